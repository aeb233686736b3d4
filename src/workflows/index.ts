// The worker's workflowsPath: every workflow rewind runs.
export { rollbackWorkflow } from './rollback';
export { snapshotWorkflow } from './snapshot';
export { environmentLockWorkflow } from './lock';
export { driftScanWorkflow } from './drift-scan';
export { syncWorkflow } from './sync';
export { repositoryMaintenanceWorkflow } from './repository-maintenance';
export { drillWorkflow } from './drill';
export { followUpWorkflow } from './follow-up';
