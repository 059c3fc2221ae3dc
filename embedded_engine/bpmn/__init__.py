"""Parsing and running ProcessCube (5Minds Studio) BPMN models with SpiffWorkflow.

SpiffWorkflow does the graph walking; everything that touches the model's *content* is ours. One concept per
module, in the order a document travels:

- :mod:`.parsing`: XML in, :class:`ParsedDefinitions` out; refuses what cannot run (:class:`DeployError`) and
  rewrites the document for SpiffWorkflow (reserved ids, model code replaced by keys) before compiling it.
- :mod:`.model`: the plain dataclasses the rest of the engine sees: definitions, process models, flow nodes,
  form fields, and instance snapshots.
- :mod:`.compiled`: a document compiled once for SpiffWorkflow, shared by all its instances: specs, id
  mapping, code tables, and the script engine, token keeper and state-only serializer built for them.
- :mod:`.scripts`: the script engine SpiffWorkflow calls; it runs conditions and scripts as JavaScript in the
  sandbox (:mod:`embedded_engine.js`) and refuses anything else, Python above all.
- :mod:`.tokens`: ProcessCube's token ``{current, history}``, kept beside SpiffWorkflow's task data, and how it
  flows from node to node and merges at joins.
- :mod:`.user_task_config`: a user task's configuration as modelled (form fields, ``camunda:property`` entries)
  and as the engine answers it, its ``${...}`` templates evaluated against the token in the sandbox.
- :mod:`.runner`: :class:`ProcessRunner`, one instance: start, load, serialize, finish tasks, terminate, and the
  :class:`InstanceSnapshot` ProcessCube reports. Model failures are the instance's ``"error"`` state, not
  exceptions.
- :mod:`.external`: external service tasks: topic, payload (computed when the token arrives) and single-try as
  modelled, and a worker's error thrown to a matching error boundary event or failing the instance.
"""

from .model import (
    EnumValue,
    FlowNodeDef,
    FlowNodeInstanceSnapshot,
    FlowNodeState,
    FormField,
    InstanceSnapshot,
    InstanceState,
    OutboundEvent,
    ParsedDefinitions,
    ProcessModelDef,
    Wait,
    WaitKind,
)
from .parsing import DeployError, parse_definitions
from .runner import ProcessRunner

__all__ = [
    "DeployError",
    "EnumValue",
    "FlowNodeDef",
    "FlowNodeInstanceSnapshot",
    "FlowNodeState",
    "FormField",
    "InstanceSnapshot",
    "InstanceState",
    "OutboundEvent",
    "ParsedDefinitions",
    "ProcessModelDef",
    "ProcessRunner",
    "Wait",
    "WaitKind",
    "parse_definitions",
]
