'use strict';
// 5Minds' own models (shared/processes, from ProcessCube.AppTemplate) and our "done when" model run to their end,
// driven only by the official TypeScript client: user tasks finished, service tasks by ExternalTaskWorkers, the
// message triggered, the timer left to fire.
const path = require('path');
const { ENGINE_URL, SHARED_PROCESSES, ExternalTaskWorker, finishUserTask, model, run, step, until, waitForInstanceEnd } =
  require('./_lib.cjs');

const RECHNUNG = 'Rechnungserstellung_soll';
const ANTRAG = 'OfficialClients_Antrag';

function worker(disposables, topic, handle, seen) {
  const instance = new ExternalTaskWorker(
    ENGINE_URL,
    topic,
    async (payload, externalTask) => {
      seen.push({ topic, processInstanceId: externalTask.processInstanceId, payload });
      return handle(payload);
    },
    { workerId: `ts-${topic}`, lockDuration: 10000, longpollingTimeout: 1000, idleTimeout: 100 },
  );
  instance.start();
  disposables.push(instance);
  return instance;
}

run(async (engine, disposables) => {
  const seen = [];
  worker(disposables, 'Rechnung erstellen', () => ({ pdf: 'rechnung.pdf' }), seen);
  worker(disposables, 'Rechnung verschicken', () => ({ verschickt: true }), seen);
  worker(disposables, 'oc_antrag_bewerten', (payload) => ({ bewertung: payload.betrag > 1000 ? 'pruefen' : 'ok' }), seen);
  const targets = process.argv.slice(2);

  if (targets.includes('rechnung')) {
    await step('deploy Rechnungserstellung', () =>
      engine.processDefinitions.deployFiles(path.join(SHARED_PROCESSES, '2_Rechnungserstellung_soll.bpmn'), {
        overwriteExisting: true,
      }),
    );
    const rechnung = await step('start Rechnungserstellung', () =>
      engine.processModels.startProcessInstance({ processModelId: RECHNUNG }),
    );
    const pi = rechnung.processInstanceId;
    const rechnungsdaten = { empfaenger: 'Muster GmbH, Musterweg 1', produkt: 'Beratung', betrag: 1200 };
    await step('Rechnung erfassen', () => finishUserTask(engine, pi, 'rechnung_erfassen', rechnungsdaten));
    await step('Rechnung freigeben: nein', () => finishUserTask(engine, pi, 'rechnung_freigeben', { confirmed: 'false' }));
    await step('Rechnung erfassen (Korrektur)', () =>
      finishUserTask(engine, pi, 'rechnung_erfassen', { ...rechnungsdaten, betrag: 1100 }),
    );
    await step('Rechnung freigeben: ja', () => finishUserTask(engine, pi, 'rechnung_freigeben', { confirmed: 'true' }));
    await step('Rechnungserstellung outcome', () => waitForInstanceEnd(engine, pi));
    await step('Rechnungserstellung service tasks', async () =>
      (await engine.flowNodeInstances.query({ processInstanceId: pi, flowNodeType: 'bpmn:ServiceTask' })).flowNodeInstances
        .map((node) => `${node.flowNodeId}:${node.state}`)
        .sort(),
    );
  }

  if (targets.includes('antrag')) {
    await step('deploy Antrag', () => engine.processDefinitions.deployFiles(model(`${ANTRAG}.bpmn`), { overwriteExisting: true }));
    const antrag = await step('start Antrag', () =>
      engine.processModels.startProcessInstance({ processModelId: ANTRAG, correlationId: 'antrag-1', initialToken: { quelle: 'test' } }),
    );
    const pi = antrag.processInstanceId;
    await step('Antrag erfassen', () => finishUserTask(engine, pi, 'Antrag_erfassen', { betrag: 1500, antragsteller: 'Erika' }));
    await step('waiting for the message', async () => {
      const list = await until(
        'the message catch event (after the service task and the timer)',
        () => engine.flowNodeInstances.query({ processInstanceId: pi, flowNodeId: 'Bestaetigung_abwarten' }),
        (result) => result.flowNodeInstances.some((node) => node.state === 'suspended' || node.state === 'running'),
      );
      return list.flowNodeInstances.map((node) => node.state);
    });
    await step('triggerMessageEvent', () =>
      engine.events.triggerMessageEvent('oc_antrag_bestaetigt', { processInstanceId: pi, payload: { bestaetigt: true } }),
    );
    await step('Antrag abschliessen', () => finishUserTask(engine, pi, 'Antrag_abschliessen', { abgeschlossen: true }));
    await step('Antrag outcome', () => waitForInstanceEnd(engine, pi));
    await step('Antrag flow', async () =>
      (await engine.flowNodeInstances.query({ processInstanceId: pi }, { sortSettings: { sortBy: 'createdAt', sortDir: 'ASC' } }))
        .flowNodeInstances.map((node) => `${node.flowNodeId}:${node.state}`),
    );
  }
  await step('external tasks handled', () => seen);
});
