'use strict';
// EngineClient: deployFiles, processModels.startProcessInstance, userTasks.query/reserve/cancel/finish.
const { run, step, until, model, waitForInstanceEnd } = require('./_lib.cjs');

const PID = 'OfficialClients_UserTasks';

run(async (engine) => {
  await step('deployFiles', () =>
    engine.processDefinitions.deployFiles(model(`${PID}.bpmn`), { overwriteExisting: true }),
  );
  await step('processModels.getById', async () => {
    const found = await engine.processModels.getById(PID);
    return { processModelId: found.processModelId, processDefinitionId: found.processDefinitionId };
  });
  const started = await step('processModels.startProcessInstance', () =>
    engine.processModels.startProcessInstance({
      processModelId: PID,
      correlationId: 'official-ts-user-tasks',
      initialToken: { antragsnummer: 7 },
    }),
  );
  const pi = started.processInstanceId;
  const waiting = await step('userTasks.query', async () => {
    const list = await until(
      'the waiting user task',
      () => engine.userTasks.query({ processInstanceId: pi, state: 'suspended' }),
      (result) => result.userTasks.length === 1,
    );
    const task = list.userTasks[0];
    return {
      totalCount: list.totalCount,
      flowNodeInstanceId: task.flowNodeInstanceId,
      flowNodeId: task.flowNodeId,
      flowNodeName: task.flowNodeName,
      flowNodeLane: task.flowNodeLane,
      flowNodeType: task.flowNodeType,
      state: task.state,
      correlationId: task.correlationId,
      startToken: task.startToken,
      formFieldIds: (task.userTaskConfig?.formFields ?? []).map((field) => field.id),
      actualOwnerId: task.actualOwnerId ?? null,
    };
  });
  const taskId = waiting.flowNodeInstanceId;
  const ownerOf = async () => {
    const list = await engine.userTasks.query({ flowNodeInstanceId: taskId });
    return list.userTasks[0]?.actualOwnerId ?? null;
  };
  await step('userTasks.reserveUserTaskInstance', async () => {
    await engine.userTasks.reserveUserTaskInstance(undefined, taskId, 'sachbearbeiterin@example.com');
    return { actualOwnerId: await ownerOf() };
  });
  await step('userTasks.cancelUserTaskInstanceReservation', async () => {
    await engine.userTasks.cancelUserTaskInstanceReservation(undefined, taskId);
    return { actualOwnerId: await ownerOf() };
  });
  await step('userTasks.finishUserTask', () =>
    engine.userTasks.finishUserTask(taskId, { approved: true, comment: 'passt' }),
  );
  await step('finished task', async () => {
    const list = await engine.flowNodeInstances.query({ flowNodeInstanceId: taskId });
    const task = list.flowNodeInstances[0];
    return { state: task.state, endToken: task.endToken ?? null };
  });
  await step('instance outcome', () => waitForInstanceEnd(engine, pi));
  const refusal = async (action) => {
    try {
      await action();
      return { refused: false };
    } catch (error) {
      return { refused: true, name: error.name, code: error.code, isError: error instanceof Error };
    }
  };
  await step('finishUserTask of a finished task', () => refusal(() => engine.userTasks.finishUserTask(taskId, {})));
  await step('reserve an unknown task', () =>
    refusal(() => engine.userTasks.reserveUserTaskInstance(undefined, 'no-such-task', 'someone')),
  );
  await step('start an unknown process model', () =>
    refusal(() => engine.processModels.startProcessInstance({ processModelId: 'No_Such_Model' })),
  );
});
