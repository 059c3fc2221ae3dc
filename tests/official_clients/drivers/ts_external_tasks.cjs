'use strict';
// ExternalTaskWorker (TypeScript client): finish, a BPMN error caught by a boundary error event, a service error,
// and a slow handler whose lock the worker extends.
const { ExternalTaskError } = require('@5minds/processcube_engine_sdk');
const { ENGINE_URL, ExternalTaskWorker, run, step, model, sleep, until, waitForInstanceEnd } = require('./_lib.cjs');

const PID = 'OfficialClients_ExternalTasks_TS';
const TOPIC = 'oc_ts_work';
const LOCK_MS = 1500; // the worker extends the lock 1 s after the fetch (max(lock - 5 s, 1 s)), then again

run(async (engine, disposables) => {
  await step('deployFiles', () => engine.processDefinitions.deployFiles(model(`${PID}.bpmn`), { overwriteExisting: true }));
  const instances = {};
  for (const mode of ['finish', 'bpmnError', 'serviceError', 'slow']) {
    const started = await step(`start ${mode}`, () =>
      engine.processModels.startProcessInstance({ processModelId: PID, initialToken: { mode, nummer: mode.length } }),
    );
    instances[mode] = started.processInstanceId;
  }
  const handled = [];
  const heartbeats = [];
  const workerErrors = [];
  const worker = new ExternalTaskWorker(
    ENGINE_URL,
    TOPIC,
    async (payload, externalTask) => {
      handled.push({
        mode: payload.mode,
        topic: externalTask.topic,
        processInstanceId: externalTask.processInstanceId,
        flowNodeInstanceId: externalTask.flowNodeInstanceId,
        workerId: externalTask.workerId,
        hasLockExpirationTime: externalTask.lockExpirationTime instanceof Date && !isNaN(externalTask.lockExpirationTime),
        payload,
      });
      switch (payload.mode) {
        case 'bpmnError':
          return new ExternalTaskError('OC_BUSINESS', 'Fachlicher Fehler', { grund: 'test' });
        case 'serviceError':
          throw new Error('Dienst nicht erreichbar');
        case 'slow':
          await sleep(2600);
          return { langsam: true };
        default:
          return { erledigt: true, nummer: payload.nummer };
      }
    },
    { workerId: 'ts-worker', lockDuration: LOCK_MS, longpollingTimeout: 1000, idleTimeout: 100, maxTasks: 10 },
  );
  disposables.push(worker);
  worker.onHeartbeat((operation, externalTaskId) => heartbeats.push({ operation, externalTaskId }));
  worker.onWorkerError((errorType, error, externalTask) =>
    workerErrors.push({ errorType, message: error?.message, code: error?.code, mode: externalTask?.payload?.mode }),
  );
  worker.start();
  // The first fetch: a task, or the engine's refusal (the worker reports it and retries with a growing back-off).
  await step('first fetch', async () => {
    await until(
      'the first task or a fetch error',
      async () => ({ handled: handled.length, errors: workerErrors }),
      (seen) => seen.handled > 0 || seen.errors.some((error) => error.errorType === 'fetchAndLock'),
    );
    if (handled.length === 0) {
      const refusal = workerErrors.find((error) => error.errorType === 'fetchAndLock');
      throw Object.assign(new Error(refusal.message), { code: refusal.code });
    }
    return handled.length;
  });
  const deadline = Date.now() + 20000;
  for (const [mode, processInstanceId] of Object.entries(instances)) {
    await step(`outcome ${mode}`, () => waitForInstanceEnd(engine, processInstanceId, Math.max(deadline - Date.now(), 500)), {
      fatal: false,
    });
  }
  worker.stop();
  await step('handled', () => handled);
  await step('heartbeats', () => heartbeats);
  await step('workerErrors', () => workerErrors);
  await step('instances', () => instances);
});
