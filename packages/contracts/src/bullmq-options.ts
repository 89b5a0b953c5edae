/**
 * The subset of BullMQ's JobsOptions the catalogue uses, declared here so that contracts stays free of a
 * runtime dependency on bullmq (it is structurally compatible with bullmq's own type).
 */
export interface JobsOptions {
  attempts?: number;
  backoff?: { type: 'exponential' | 'fixed'; delay: number };
  removeOnComplete?: boolean | number | { age: number; count?: number };
  removeOnFail?: boolean | number | { age: number; count?: number };
}
