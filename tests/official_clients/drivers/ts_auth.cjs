'use strict';
// OAuth 2.0 client credentials through the official client (ClientCredentialsConfig: the authority from the engine's
// /authority, discovery, token endpoint) against an engine that refuses anonymous callers: HTTP, Socket.IO and an
// ExternalTaskWorker all authenticate with the token; the dummy token is refused.
const { ENGINE_URL, EngineClient, ExternalTaskWorker, run, step, until, model, waitForInstanceEnd } = require('./_lib.cjs');

const PID = 'OfficialClients_UserTasks';
const credentials = {
  engineUrl: ENGINE_URL,
  clientId: process.argv[2],
  clientSecret: process.argv[3],
  scope: 'engine_read engine_write',
};

run(async (anonymous, disposables) => {
  await step('anonymous is refused', async () => {
    try {
      await anonymous.processModels.getAll();
      return { refused: false };
    } catch (error) {
      return { refused: true, name: error.name, code: error.code };
    }
  });
  const engine = new EngineClient(ENGINE_URL, credentials);
  disposables.push(engine);
  await step('deployFiles', () => engine.processDefinitions.deployFiles(model(`${PID}.bpmn`), { overwriteExisting: true }));
  const waiting = [];
  const connectErrors = [];
  // The token is fetched by now (deployFiles), so the socket can be built synchronously with it.
  const connected = new Promise((resolve) => engine.notification.onConnected(() => resolve(true), true));
  await step('onUserTaskWaiting', async () => {
    await engine.userTasks.onUserTaskWaiting((message) => waiting.push(message));
    await engine.notification.onDisconnected((reason) => connectErrors.push(String(reason)));
    return true;
  });
  await step('socket connected', () =>
    Promise.race([
      connected,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no connect within 10 s; disconnects: ${JSON.stringify(connectErrors)}`)), 10000),
      ),
    ]),
  );
  const started = await step('start', () => engine.processModels.startProcessInstance({ processModelId: PID }));
  const pi = started.processInstanceId;
  const task = await step('userTasks.query', async () => {
    const list = await until(
      'the user task',
      () => engine.userTasks.query({ processInstanceId: pi }),
      (result) => result.userTasks.length === 1,
    );
    return { flowNodeInstanceId: list.userTasks[0].flowNodeInstanceId, ownerId: list.userTasks[0].ownerId };
  });
  await step('notification received', async () => {
    await until('user_task_waiting over Socket.IO', async () => waiting.length, (n) => n >= 1);
    return waiting.map((message) => message.processInstanceId);
  });
  await step('finishUserTask', () => engine.userTasks.finishUserTask(task.flowNodeInstanceId, { approved: true }));
  await step('instance outcome', () => waitForInstanceEnd(engine, pi));
  await step('ExternalTaskWorker fetches with the token', async () => {
    await engine.processDefinitions.deployFiles(model('OfficialClients_ExternalTaskLock.bpmn'), { overwriteExisting: true });
    const locked = await engine.processModels.startProcessInstance({ processModelId: 'OfficialClients_ExternalTaskLock' });
    const worker = new ExternalTaskWorker(ENGINE_URL, 'oc_lock', async () => ({ mitToken: true }), {
      identity: credentials,
      longpollingTimeout: 1000,
      idleTimeout: 100,
    });
    disposables.push(worker);
    const errors = [];
    worker.onWorkerError((errorType, error) => errors.push({ errorType, message: error?.message, code: error?.code }));
    worker.start();
    const outcome = await waitForInstanceEnd(engine, locked.processInstanceId);
    worker.stop();
    return { outcome, errors };
  });
});
