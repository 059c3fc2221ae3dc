'use strict';
// Timers: an intermediate timer catch event (PT1S) and an interrupting boundary timer (PT1S) on a user task that
// nobody finishes; both instances run to their end without further calls.
const { run, step, until, model, waitForInstanceEnd } = require('./_lib.cjs');

const TIMER = 'OfficialClients_Timer';
const BOUNDARY = 'OfficialClients_BoundaryTimer';

run(async (engine) => {
  await step('deployFiles', () =>
    engine.processDefinitions.deployFiles([model(`${TIMER}.bpmn`), model(`${BOUNDARY}.bpmn`)], { overwriteExisting: true }),
  );
  const timer = await step('start timer', () => engine.processModels.startProcessInstance({ processModelId: TIMER }));
  const boundary = await step('start boundary timer', () =>
    engine.processModels.startProcessInstance({ processModelId: BOUNDARY, initialToken: { frist: 'PT1S' } }),
  );
  await step('timer waiting', async () => {
    const list = await engine.flowNodeInstances.query({ processInstanceId: timer.processInstanceId, flowNodeId: 'Eine_Sekunde' });
    return list.flowNodeInstances.map((node) => ({ flowNodeType: node.flowNodeType, state: node.state }));
  });
  await step('user task waiting', async () => {
    const list = await until(
      'the user task under the boundary timer',
      () => engine.userTasks.query({ processInstanceId: boundary.processInstanceId }),
      (result) => result.userTasks.length === 1,
    );
    return { state: list.userTasks[0].state, flowNodeId: list.userTasks[0].flowNodeId };
  });
  await step('timer outcome', () => waitForInstanceEnd(engine, timer.processInstanceId));
  await step('boundary timer outcome', () => waitForInstanceEnd(engine, boundary.processInstanceId));
  await step('user task after the boundary timer', async () => {
    const list = await engine.userTasks.query({ processInstanceId: boundary.processInstanceId });
    return list.userTasks.map((task) => task.state);
  });
});
