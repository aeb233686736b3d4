// The snapshot workflow's request and status.
import { z } from 'zod';
import type { ComponentSnapshot, SnapshotOrigin } from './cross-section';

export const snapshotRequestSchema = z.strictObject({
  environment: z.string().min(1),
  components: z.array(z.string().min(1)).min(1).optional(),
  version: z.string().min(1).max(200).optional(),
  reason: z.string().max(500).optional(),
  requester: z.string().min(1).max(100).optional(),
  origin: z.enum(['manual', 'schedule']).default('manual'),
  /** The digest of the manifest the request was made with (manifest/digest.ts). */
  manifestDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});
export type SnapshotRequest = z.output<typeof snapshotRequestSchema>;

/** What a workflow needs to take a cross-section of an environment. */
export interface SnapshotContext {
  environment: string;
  envTaskQueue: string;
  components: string[];
  heartbeatTimeoutMs: number;
}

export interface CrossSectionRequest {
  origin: SnapshotOrigin;
  version?: string;
  reason?: string;
  /** By component: a snapshot to return instead of taking one when the component is exactly it. */
  unlessAt?: Record<string, ComponentSnapshot>;
  /** The id to give the cross-section (default: a new one). */
  crossSectionId?: string;
}

export interface CrossSectionResult {
  crossSectionId: string;
  environment: string;
  version?: string;
  components: Record<string, ComponentSnapshot>;
}

export interface SnapshotStatus {
  environment: string;
  state: 'running' | 'completed' | 'failed';
  crossSectionId?: string;
  components: Record<string, 'pending' | 'running' | 'done' | 'failed'>;
}
