'use strict';
// Shared by the Node drivers: the official client (from the repository's node_modules, unchanged), the step
// recorder and polling. A driver prints one line of JSON, {"steps": {name: {"ok": value} | {"error": {...}}}}.
const path = require('path');
const client = require('@5minds/processcube_engine_client');

const ENGINE_URL = process.env.ENGINE_URL;
const MODELS_DIR = process.env.MODELS_DIR;
const SHARED_PROCESSES = process.env.SHARED_PROCESSES;
const DRIVER_DEADLINE_MS = 45000;

const steps = {};

class StepFailed extends Error {}

function describe(error) {
  if (error === null || typeof error !== 'object') {
    return { message: String(error) };
  }
  return {
    name: error.name,
    message: error.message,
    code: error.code,
    additionalInformation: error.additionalInformation,
  };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Runs one step; its value (JSON) is recorded. A failure is recorded and ends the scenario, unless
// { fatal: false }: then the step's value is undefined and the scenario goes on.
async function step(name, fn, { fatal = true } = {}) {
  try {
    const value = await fn();
    steps[name] = { ok: value === undefined ? null : value };
    return value;
  } catch (error) {
    steps[name] = { error: describe(error) };
    if (fatal) {
      throw new StepFailed(name);
    }
    return undefined;
  }
}

// Calls probe() until accept(value) holds; a bound on waiting, never a timing check.
async function until(what, probe, accept, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (accept(last)) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Error(`gave up after ${ms} ms waiting for ${what}; last answer: ${JSON.stringify(last).slice(0, 1500)}`);
    }
    await sleep(100);
  }
}

function model(name) {
  return path.join(MODELS_DIR, name);
}

// The state of a process instance and the end events it reached, through the official client.
async function instanceOutcome(engine, processInstanceId) {
  const instances = await engine.processInstances.query({ processInstanceId });
  const instance = instances.processInstances[0];
  const ends = await engine.flowNodeInstances.query({ processInstanceId, flowNodeType: 'bpmn:EndEvent' });
  return {
    state: instance ? instance.state : null,
    endEvents: ends.flowNodeInstances.map((node) => node.flowNodeId).sort(),
  };
}

async function waitForInstanceEnd(engine, processInstanceId, ms = 10000) {
  return until(
    `process instance ${processInstanceId} to end`,
    () => instanceOutcome(engine, processInstanceId),
    (outcome) => ['finished', 'terminated', 'error'].includes(outcome.state),
    ms,
  );
}

// Waits for the user task flowNodeId of the instance, finishes it with result, and returns what it showed.
async function finishUserTask(engine, processInstanceId, flowNodeId, result) {
  const list = await until(
    `user task ${flowNodeId} to wait`,
    () => engine.userTasks.query({ processInstanceId, flowNodeId, state: 'suspended' }),
    (found) => found.userTasks.length === 1,
  );
  const task = list.userTasks[0];
  await engine.userTasks.finishUserTask(task.flowNodeInstanceId, result);
  return {
    flowNodeId: task.flowNodeId,
    flowNodeName: task.flowNodeName,
    flowNodeLane: task.flowNodeLane ?? null,
    startToken: task.startToken ?? null,
    formFields: task.userTaskConfig?.formFields ?? [],
  };
}

function run(main) {
  const engine = new client.EngineClient(ENGINE_URL);
  const extras = [];
  const print = () => {
    process.stdout.write(JSON.stringify({ steps }) + '\n');
  };
  const guard = setTimeout(() => {
    steps._driver = { error: { message: `driver deadline of ${DRIVER_DEADLINE_MS} ms passed` } };
    print();
    process.exit(0);
  }, DRIVER_DEADLINE_MS);
  main(engine, extras)
    .catch((error) => {
      if (!(error instanceof StepFailed)) {
        steps._driver = { error: describe(error) };
      }
    })
    .finally(() => {
      clearTimeout(guard);
      print();
      for (const disposable of extras) {
        try {
          disposable.dispose();
        } catch (error) {
          // disposing is best effort
        }
      }
      engine.dispose();
      process.exit(0);
    });
}

module.exports = {
  ...client,
  ENGINE_URL,
  MODELS_DIR,
  finishUserTask,
  SHARED_PROCESSES,
  instanceOutcome,
  model,
  run,
  sleep,
  step,
  until,
  waitForInstanceEnd,
};
