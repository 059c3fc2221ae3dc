'use strict';
// processDefinitions.persistProcessDefinitions and startProcessInstanceAndAwaitEndEvent (which posts to the literal
// path /process_models/:process_model_id/start with the id in the body), on both clients that offer it.
const fs = require('fs');
const { run, step, model } = require('./_lib.cjs');

const PID = 'OfficialClients_Straight';

run(async (engine) => {
  await step('processDefinitions.persistProcessDefinitions', () =>
    engine.processDefinitions.persistProcessDefinitions(fs.readFileSync(model(`${PID}.bpmn`), 'utf-8'), {
      overwriteExisting: true,
    }),
  );
  await step('processModels.startProcessInstanceAndAwaitEndEvent', () =>
    engine.processModels.startProcessInstanceAndAwaitEndEvent({
      processModelId: PID,
      initialToken: { bestellung: 42 },
    }),
    { fatal: false },
  );
  await step('processDefinitions.startProcessInstanceAndAwaitEndEvent', () =>
    engine.processDefinitions.startProcessInstanceAndAwaitEndEvent({
      processModelId: PID,
      initialToken: { bestellung: 43 },
    }),
    { fatal: false },
  );
  await step('processModels.startProcessInstanceAndAwaitSpecificEndEvent', () =>
    engine.processModels.startProcessInstanceAndAwaitSpecificEndEvent(
      { processModelId: PID, initialToken: { bestellung: 44 } },
      'EndEvent_Fertig',
    ),
  );
});
