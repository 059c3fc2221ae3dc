"""ProcessCube's token, kept beside SpiffWorkflow's task data.

ProcessCube's token is ``{current, history}``: ``current`` is the previous node's result and
``history[flowNodeId]`` keeps each node's result. It lives in each SpiffWorkflow task's ``internal_data``
(which SpiffWorkflow serializes but never merges or copies), so SpiffWorkflow's own data propagation cannot alias
or mangle it. ``task.data`` is never used: SpiffWorkflow merges and copies that between tasks on its own.

- A node's token on entry is its parent's token on exit; the root task holds the initial token.
- A node's result (what a user or worker sent, what its script returned) becomes ``current`` on exit and its entry
  in ``history``; a node without a result passes ``current`` on. A subprocess results in what its end event
  ended with.
- At a joining gateway, ``history`` is the union of all arriving branches, and ``current`` is the shallow merge of
  the branches' ``current`` objects in arrival order (a later branch wins a key both set); if any branch's
  ``current`` is not an object, ``current`` is the last arriving branch's.

:class:`TokenKeeper` hooks into every task spec's completion: it writes each node's token on exit and its
completion order. The functions beside it are the only other readers and writers of these task fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.util.task import TaskState

__all__ = ["TokenKeeper", "completed_token", "completion_order", "set_initial_token", "set_result"]

# Keys in SpiffWorkflow's task.internal_data / workflow.data.
_IN: Final = "pc_in"  # token {current, history} on entry (stored for the root task and joins only)
_OUT: Final = "pc_out"  # token after the node completed
_RESULT: Final = "pc_result"  # the node's result, set just before completing it
_SEQ: Final = "pc_seq"  # completion order
_WF_SEQ: Final = "pc_seq_counter"  # the last completion order handed out, in the top workflow's data


def set_initial_token(workflow: Any, current: Any) -> None:
    """Give a new workflow its initial token: ``current`` and an empty ``history``."""
    workflow.task_tree.internal_data[_IN] = {"current": current, "history": {}}


def set_result(task: Any, result: Any) -> None:
    """The node's result, to become ``current`` when the task completes (call just before completing it)."""
    task.internal_data[_RESULT] = result


def completed_token(task: Any) -> dict[str, Any] | None:
    """The token the node completed with; None while it has not completed."""
    return task.internal_data.get(_OUT)  # type: ignore[no-any-return]


def completion_order(task: Any) -> int | None:
    """When the node completed, counted across the whole instance (1, 2, ...); None while it has not."""
    seq = task.internal_data.get(_SEQ)
    return None if seq is None else int(seq)


def _merge_tokens(tokens: list[dict[str, Any]]) -> dict[str, Any]:
    if len(tokens) == 1:
        return tokens[0]
    history: dict[str, Any] = {}
    for token in tokens:
        history.update(token["history"])
    currents = [token["current"] for token in tokens]
    current: Any
    if all(isinstance(c, dict) for c in currents):
        current = {}
        for c in currents:
            current.update(c)
    else:
        current = currents[-1]
    return {"current": current, "history": history}


class TokenKeeper:
    """The token bookkeeping for the specs of one deployed document.

    ``original_ids`` maps SpiffWorkflow ids of renamed flow nodes back to the model's ids: ``history`` is keyed by
    the model's ids.
    """

    def __init__(self, original_ids: Mapping[str, str]) -> None:
        self._original_ids = original_ids

    def wire(self, specs: Iterable[Any]) -> None:
        """Hook the bookkeeping into every task spec's completion (events are not serialized: specs are ours)."""
        seen: set[int] = set()
        for spec in specs:
            if spec is None or id(spec) in seen:
                continue
            seen.add(id(spec))
            for task_spec in spec.task_specs.values():
                task_spec.completed_event.connect(self._on_completed)

    def in_token(self, task: Any) -> dict[str, Any]:
        """The token the node was entered with."""
        stored = task.internal_data.get(_IN)
        if stored is not None:
            return stored  # type: ignore[no-any-return]
        if isinstance(task.task_spec, UnstructuredJoin):
            return _merge_tokens([self.out_token(t.parent) for t in self._join_sources(task)])
        parent = task.parent
        if parent is None:
            workflow = task.workflow
            if workflow.parent_task_id is not None:
                return self.in_token(workflow.top_workflow.get_task_from_id(workflow.parent_task_id))
            return {"current": None, "history": {}}
        return self.out_token(parent)

    def out_token(self, task: Any) -> dict[str, Any]:
        """The token the node left with; for a node that has not completed, the one it was entered with."""
        stored = task.internal_data.get(_OUT)
        if stored is not None:
            return stored  # type: ignore[no-any-return]
        return self.in_token(task)

    @staticmethod
    def _join_sources(task: Any) -> list[Any]:
        spec = task.task_spec
        others = [
            t
            for t in task.workflow.tasks.values()
            if t.task_spec is spec
            and t is not task
            and t.has_state(TaskState.FINISHED_MASK)
            and not task.is_descendant_of(t)
            and t.parent is not None
        ]
        others.sort(key=lambda t: t.last_state_change)
        return [*others, task] if task.parent is not None else others

    def _on_completed(self, workflow: Any, task: Any) -> None:
        spec = task.task_spec
        token_in = self.in_token(task)
        if isinstance(spec, UnstructuredJoin):
            task.internal_data[_IN] = token_in
        if _RESULT in task.internal_data:
            current = task.internal_data.pop(_RESULT)
        elif isinstance(spec, SubWorkflowTask):
            current = self._subprocess_result(workflow, task, token_in)
        else:
            current = token_in["current"]
        history = token_in["history"]
        bpmn_id = getattr(spec, "bpmn_id", None)
        if bpmn_id is not None:
            history = {**history, self._original_ids.get(bpmn_id, bpmn_id): current}
        task.internal_data[_OUT] = {"current": current, "history": history}
        top = workflow.top_workflow
        seq = int(top.data.get(_WF_SEQ, 0)) + 1
        top.data[_WF_SEQ] = seq
        task.internal_data[_SEQ] = seq

    @staticmethod
    def _subprocess_result(workflow: Any, task: Any, token_in: dict[str, Any]) -> Any:
        sub = workflow.top_workflow.subprocesses.get(task.id)
        if sub is None:
            return token_in["current"]
        ends = [t for t in sub.tasks.values() if t.task_spec.name == "End" and _OUT in t.internal_data]
        return ends[-1].internal_data[_OUT]["current"] if ends else token_in["current"]
