'use strict';
// The TypeScript client's read side and housekeeping: application info, authority, process definitions and models,
// process instance queries (filters, sorting, paging), flow node queries, deployed topics, terminate.
const { ENGINE_URL, ExternalTaskApiClient, run, step, until, model } = require('./_lib.cjs');

const PID = 'OfficialClients_UserTasks';
const soft = { fatal: false };

run(async (engine) => {
  await step('applicationInfo.getApplicationInfo', () => engine.applicationInfo.getApplicationInfo(), soft);
  await step('applicationInfo.getAuthorityAddress', () => engine.applicationInfo.getAuthorityAddress(), soft);
  await step('deployFiles', () =>
    engine.processDefinitions.deployFiles([model(`${PID}.bpmn`), model('OfficialClients_ExternalTaskLock.bpmn')], {
      overwriteExisting: true,
    }),
  );
  const definitions = await step(
    'processDefinitions.getAll',
    async () => {
      const list = await engine.processDefinitions.getAll();
      return {
        totalCount: list.totalCount,
        items: list.processDefinitions.map((definition) => ({
          processDefinitionId: definition.processDefinitionId,
          processModelIds: definition.processModels.map((processModel) => processModel.processModelId),
          deployedAtIsDate: definition.deployedAt instanceof Date && !isNaN(definition.deployedAt),
          hasXml: typeof definition.xml === 'string',
        })),
      };
    },
    soft,
  );
  await step(
    'processDefinitions.getByProcessModelId',
    async () => {
      const definition = await engine.processDefinitions.getByProcessModelId(PID, { includeXml: true });
      return { processDefinitionId: definition.processDefinitionId, hasXml: typeof definition.xml === 'string' };
    },
    soft,
  );
  if (definitions) {
    const id = definitions.items.find((item) => item.processModelIds.includes(PID))?.processDefinitionId;
    await step(
      'processDefinitions.getById',
      async () => (await engine.processDefinitions.getById(id)).processDefinitionId,
      soft,
    );
  }
  await step(
    'processModels.getAll',
    async () => {
      const list = await engine.processModels.getAll();
      return { totalCount: list.totalCount, ids: list.processModels.map((processModel) => processModel.processModelId).sort() };
    },
    soft,
  );
  const first = await step('start one', () =>
    engine.processModels.startProcessInstance({ processModelId: PID, correlationId: 'reads', initialToken: { n: 1 } }),
  );
  const second = await step('start two', () =>
    engine.processModels.startProcessInstance({ processModelId: PID, correlationId: 'reads', initialToken: { n: 2 } }),
  );
  await step(
    'processInstances.query by correlationId, sorted, paged',
    async () => {
      const list = await engine.processInstances.query(
        { correlationId: 'reads' },
        { sortSettings: { sortBy: 'createdAt', sortDir: 'DESC' }, offset: 0, limit: 1 },
      );
      return {
        totalCount: list.totalCount,
        ids: list.processInstances.map((instance) => instance.processInstanceId),
        states: list.processInstances.map((instance) => instance.state),
        createdAtIsDate: list.processInstances.every((instance) => instance.createdAt instanceof Date && !isNaN(instance.createdAt)),
      };
    },
    soft,
  );
  await step(
    'processInstances.query by state (array)',
    async () => {
      const list = await engine.processInstances.query({ correlationId: 'reads', state: ['running', 'terminated'] });
      return list.processInstances.map((instance) => instance.processInstanceId).sort();
    },
    soft,
  );
  await step(
    'processModels.getByProcessInstanceId',
    async () => (await engine.processModels.getByProcessInstanceId(first.processInstanceId)).processModelId,
    soft,
  );
  await step(
    'flowNodeInstances.query sorted with paging',
    async () => {
      await until(
        'both user tasks',
        () => engine.userTasks.query({ correlationId: 'reads', state: 'suspended' }),
        (result) => result.userTasks.length === 2,
      );
      const list = await engine.flowNodeInstances.query(
        { correlationId: 'reads', flowNodeType: 'bpmn:UserTask' },
        { sortSettings: { sortBy: 'createdAt', sortDir: 'ASC' }, limit: 1, offset: 1 },
      );
      return {
        totalCount: list.totalCount,
        processInstanceIds: list.flowNodeInstances.map((node) => node.processInstanceId),
        startedAtIsDate: list.flowNodeInstances.every((node) => node.startedAt instanceof Date && !isNaN(node.startedAt)),
      };
    },
    soft,
  );
  await step(
    'ExternalTaskApiClient.getAllDeployedTopics',
    async () => {
      const api = new ExternalTaskApiClient(ENGINE_URL);
      try {
        return await api.getAllDeployedTopics();
      } finally {
        api.dispose();
      }
    },
    soft,
  );
  await step(
    'processInstances.getProcessDefinition',
    async () => (await engine.processInstances.getProcessDefinition(first.processInstanceId)).processDefinitionId,
    soft,
  );
  await step(
    'processInstances.terminateProcessInstance',
    async () => {
      await engine.processInstances.terminateProcessInstance(second.processInstanceId);
      const list = await engine.processInstances.query({ processInstanceId: second.processInstanceId });
      const tasks = await engine.userTasks.query({ processInstanceId: second.processInstanceId });
      return { state: list.processInstances[0]?.state, taskStates: tasks.userTasks.map((task) => task.state) };
    },
    soft,
  );
  await step(
    'processDefinitions.deleteById',
    async () => {
      await engine.processDefinitions.deleteById('OfficialClients_ExternalTaskLock_Definition');
      const list = await engine.processModels.getAll();
      return list.processModels.map((processModel) => processModel.processModelId).sort();
    },
    soft,
  );
  await step('ids', () => ({ first: first.processInstanceId, second: second.processInstanceId }));
});
