// The SDK logs every failed activity and workflow at WARN; tests provoke many on purpose.
import { DefaultLogger, Runtime } from '@temporalio/worker';

try {
  Runtime.install({ logger: new DefaultLogger(process.env.REWIND_TEST_SDK_LOG_LEVEL === 'WARN' ? 'WARN' : 'ERROR') });
} catch {
  // Already installed in this worker process.
}
