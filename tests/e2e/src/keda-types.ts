/**
 * KEDA's `ScaledObject` (keda.sh/v1alpha1, KEDA 2.x), the fields of its CRD that a manifest may set, for
 * type-checking infra/k8s (kubernetes-types has only the built-in kinds). Written from KEDA's CRD
 * (`keda.sh_scaledobjects.yaml`): `spec.scaleTargetRef` and `spec.triggers` are required; every trigger has
 * a `type` and string-valued `metadata`.
 */
import type { ObjectMeta } from 'kubernetes-types/meta/v1.js';
import type { HorizontalPodAutoscalerBehavior } from 'kubernetes-types/autoscaling/v2.js';

export interface ScaledObject {
  apiVersion: 'keda.sh/v1alpha1';
  kind: 'ScaledObject';
  metadata: ObjectMeta;
  spec: {
    scaleTargetRef: { apiVersion?: string; kind?: string; name: string; envSourceContainerName?: string };
    pollingInterval?: number;
    cooldownPeriod?: number;
    initialCooldownPeriod?: number;
    idleReplicaCount?: number;
    minReplicaCount?: number;
    maxReplicaCount?: number;
    fallback?: { failureThreshold: number; replicas: number };
    advanced?: {
      restoreToOriginalReplicaCount?: boolean;
      horizontalPodAutoscalerConfig?: { name?: string; behavior?: HorizontalPodAutoscalerBehavior };
      scalingModifiers?: {
        formula?: string;
        target?: string;
        activationTarget?: string;
        metricType?: string;
      };
    };
    triggers: {
      type: string;
      name?: string;
      metricType?: 'AverageValue' | 'Value' | 'Utilization';
      useCachedMetrics?: boolean;
      metadata: Record<string, string>;
      authenticationRef?: { name: string; kind?: 'TriggerAuthentication' | 'ClusterTriggerAuthentication' };
    }[];
  };
}

/** kustomize's Kustomization, the fields infra/k8s uses (kustomize.config.k8s.io/v1beta1). */
export interface Kustomization {
  apiVersion: 'kustomize.config.k8s.io/v1beta1';
  kind: 'Kustomization';
  namespace?: string;
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  resources?: string[];
  configMapGenerator?: { name: string; literals?: string[]; files?: string[]; envs?: string[] }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
}
