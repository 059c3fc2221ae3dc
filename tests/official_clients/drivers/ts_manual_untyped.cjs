'use strict';
// manualTasks.query/finishManualTask and untypedTasks.query/finishTask (PUT /untyped_tasks/:id/finish).
const { run, step, until, model, waitForInstanceEnd } = require('./_lib.cjs');

const PID = 'OfficialClients_ManualUntyped';

const brief = (task) => ({
  flowNodeInstanceId: task.flowNodeInstanceId,
  flowNodeId: task.flowNodeId,
  flowNodeName: task.flowNodeName,
  flowNodeType: task.flowNodeType,
  flowNodeLane: task.flowNodeLane,
  state: task.state,
});

run(async (engine) => {
  await step('deployFiles', () => engine.processDefinitions.deployFiles(model(`${PID}.bpmn`), { overwriteExisting: true }));
  const started = await step('start', () =>
    engine.processModels.startProcessInstance({ processModelId: PID, initialToken: { paket: 'ts' } }),
  );
  const pi = started.processInstanceId;
  const manual = await step('manualTasks.query', async () => {
    const list = await until(
      'the waiting manual task',
      () => engine.manualTasks.query({ processInstanceId: pi, state: 'suspended' }),
      (result) => result.manualTasks.length === 1,
    );
    return brief(list.manualTasks[0]);
  });
  await step('manualTasks.finishManualTask', () => engine.manualTasks.finishManualTask(manual.flowNodeInstanceId));
  const untyped = await step('untypedTasks.query', async () => {
    const list = await until(
      'the waiting untyped task',
      () => engine.untypedTasks.query({ processInstanceId: pi, state: 'suspended' }),
      (result) => result.tasks.length === 1,
    );
    return brief(list.tasks[0]);
  });
  await step('untypedTasks.finishTask', () => engine.untypedTasks.finishTask(untyped.flowNodeInstanceId));
  await step('instance outcome', () => waitForInstanceEnd(engine, pi));
});
