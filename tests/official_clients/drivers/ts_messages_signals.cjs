'use strict';
// events.triggerMessageEvent / triggerSignalEvent continue intermediate catch events; a message starts an
// instance at a message start event.
const { run, step, until, model, waitForInstanceEnd } = require('./_lib.cjs');

const PID = 'OfficialClients_MessageSignal';
const START_PID = 'OfficialClients_MessageStart';

async function waitingAt(engine, processInstanceId, flowNodeId) {
  const list = await until(
    `${flowNodeId} to wait`,
    () => engine.flowNodeInstances.query({ processInstanceId, flowNodeId }),
    (result) => result.flowNodeInstances.some((node) => node.state === 'suspended' || node.state === 'running'),
  );
  const node = list.flowNodeInstances[0];
  return { flowNodeId: node.flowNodeId, flowNodeType: node.flowNodeType, eventType: node.eventType ?? null, state: node.state };
}

run(async (engine) => {
  await step('deployFiles', () =>
    engine.processDefinitions.deployFiles([model(`${PID}.bpmn`), model(`${START_PID}.bpmn`)], { overwriteExisting: true }),
  );
  const started = await step('start', () =>
    engine.processModels.startProcessInstance({ processModelId: PID, initialToken: { fall: 'ts' } }),
  );
  const pi = started.processInstanceId;
  await step('waiting at the message', () => waitingAt(engine, pi, 'Nachricht_abwarten'));
  await step('events.triggerMessageEvent', () =>
    engine.events.triggerMessageEvent('oc_weiter', { processInstanceId: pi, payload: { nachricht: 'weiter' } }),
  );
  await step('waiting at the signal', () => waitingAt(engine, pi, 'Signal_abwarten'));
  await step('events.triggerSignalEvent', () => engine.events.triggerSignalEvent('oc_los', { processInstanceId: pi }));
  await step('instance outcome', () => waitForInstanceEnd(engine, pi));

  await step('events.triggerMessageEvent (start event)', () =>
    engine.events.triggerMessageEvent('oc_bestellung_eingegangen', { payload: { bestellung: 'ts-1' } }),
  );
  await step('instance started by the message', async () => {
    const list = await until(
      'an instance started by the message',
      () => engine.processInstances.query({ processModelId: START_PID }),
      (result) => result.processInstances.some((instance) => instance.state === 'finished'),
    );
    return list.processInstances.map((instance) => ({ state: instance.state, startToken: instance.startToken ?? null }));
  });
});
