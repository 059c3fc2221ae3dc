'use strict';
// Socket.IO notifications through the official client: onProcessStarted, onUserTaskWaiting, onProcessEnded,
// onProcessTerminated (client.notification) and userTasks.onUserTaskWaiting.
const { run, step, until, model } = require('./_lib.cjs');

const PID = 'OfficialClients_UserTasks';

run(async (engine) => {
  const seen = { started: [], waiting: [], waitingViaUserTasks: [], ended: [], terminated: [] };
  await step('deployFiles', () =>
    engine.processDefinitions.deployFiles(model(`${PID}.bpmn`), { overwriteExisting: true }),
  );
  const connected = new Promise((resolve) => engine.notification.onConnected(() => resolve(true), true));
  await step('subscribe', async () => {
    await engine.notification.onProcessStarted((message) => seen.started.push(message));
    await engine.notification.onUserTaskWaiting((message) => seen.waiting.push(message));
    await engine.userTasks.onUserTaskWaiting((message) => seen.waitingViaUserTasks.push(message));
    await engine.notification.onProcessEnded((message) => seen.ended.push(message));
    await engine.notification.onProcessTerminated((message) => seen.terminated.push(message));
    return true;
  });
  await step('socket connected', () =>
    Promise.race([connected, new Promise((_, reject) => setTimeout(() => reject(new Error('no connect within 10 s')), 10000))]),
  );
  const toFinish = await step('start (to finish)', () =>
    engine.processModels.startProcessInstance({ processModelId: PID, initialToken: { fall: 'fertig' } }),
  );
  const toTerminate = await step('start (to terminate)', () =>
    engine.processModels.startProcessInstance({ processModelId: PID, initialToken: { fall: 'abbruch' } }),
  );
  const ids = [toFinish.processInstanceId, toTerminate.processInstanceId];
  const of = (list) => list.filter((message) => ids.includes(message.processInstanceId));
  await step('onProcessStarted', async () => {
    await until('OnProcessStarted for both instances', async () => of(seen.started).length, (n) => n >= 2);
    return of(seen.started).map((message) => ({ processInstanceId: message.processInstanceId, processModelId: message.processModelId }));
  });
  await step('onUserTaskWaiting', async () => {
    await until('user_task_waiting for both instances', async () => of(seen.waiting).length, (n) => n >= 2);
    return of(seen.waiting).map((message) => ({
      processInstanceId: message.processInstanceId,
      flowNodeId: message.flowNodeId,
      flowNodeInstanceId: message.flowNodeInstanceId,
    }));
  });
  await step('userTasks.onUserTaskWaiting', async () => {
    await until('user_task_waiting (userTasks client) for both instances', async () => of(seen.waitingViaUserTasks).length, (n) => n >= 2);
    return of(seen.waitingViaUserTasks).length;
  });
  const task = of(seen.waiting).find((message) => message.processInstanceId === toFinish.processInstanceId);
  await step('finishUserTask', () => engine.userTasks.finishUserTask(task.flowNodeInstanceId, { approved: true }));
  await step('onProcessEnded', async () => {
    await until('OnProcessFinished', async () => of(seen.ended).length, (n) => n >= 1);
    return of(seen.ended).map((message) => ({ processInstanceId: message.processInstanceId }));
  });
  await step('terminateProcessInstance', () => engine.processInstances.terminateProcessInstance(toTerminate.processInstanceId));
  await step('onProcessTerminated', async () => {
    await until('OnProcessTerminated', async () => of(seen.terminated).length, (n) => n >= 1);
    return of(seen.terminated).map((message) => ({ processInstanceId: message.processInstanceId }));
  });
  await step('ids', () => ({ finished: toFinish.processInstanceId, terminated: toTerminate.processInstanceId }));
});
