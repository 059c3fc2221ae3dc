"""processcube_client: EventClient.trigger_message (to one instance), Client.trigger_signal, and Client.trigger_message
to a message start event."""

from __future__ import annotations

from _common import ENGINE_URL, deploy, run, start, step, until, wait_for_end
from processcube_client import ClientFactory
from processcube_client.core.api import (
    Client,
    FlowNodeInstancesQuery,
    MessageTriggerRequest,
    ProcessInstanceQueryRequest,
)

PID = "OfficialClients_MessageSignal"
START_PID = "OfficialClients_MessageStart"


def waiting_at(client: Client, pi: str, flow_node_id: str) -> dict[str, object]:
    nodes = until(
        f"{flow_node_id} to wait",
        lambda: client.flow_node_instance_query(
            FlowNodeInstancesQuery(process_instance_id=pi, flow_node_id=flow_node_id)
        ),
        lambda found: any(node.state in ("suspended", "running") for node in found),
    )
    return {"flowNodeId": nodes[0].flow_node_id, "flowNodeType": nodes[0].flow_node_type, "state": nodes[0].state}


def main() -> None:
    client = Client(ENGINE_URL)
    for pid in (PID, START_PID):
        deploy(client, pid, f"deploy {pid}")
    pi = start(client, PID, {"fall": "py"})
    step("waiting at the message", lambda: waiting_at(client, pi, "Nachricht_abwarten"))
    events = ClientFactory().create_event_client(ENGINE_URL)
    step(
        "EventClient.trigger_message",
        lambda: events.trigger_message("oc_weiter", {"nachricht": "weiter"}, process_instance_id=pi),
    )
    step("waiting at the signal", lambda: waiting_at(client, pi, "Signal_abwarten"))
    step("Client.trigger_signal", lambda: client.trigger_signal("oc_los"))
    wait_for_end(client, pi)
    before = len(client.process_instance_query(ProcessInstanceQueryRequest(process_model_id=START_PID, limit=100)))
    step(
        "Client.trigger_message (start event)",
        lambda: client.trigger_message(
            "oc_bestellung_eingegangen", MessageTriggerRequest(payload={"bestellung": "py-1"})
        ),
    )
    step(
        "instance started by the message",
        lambda: [
            instance.state
            for instance in until(
                "a new instance started by the message",
                lambda: client.process_instance_query(
                    ProcessInstanceQueryRequest(process_model_id=START_PID, limit=100)
                ),
                lambda found: len(found) > before and all(instance.state == "finished" for instance in found),
            )
        ],
    )


if __name__ == "__main__":
    run(main)
