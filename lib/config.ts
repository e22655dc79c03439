import type { Node } from 'constructs';

/** Deployment settings from `cdk.json` context (`-c chat:<key>=…` overrides). */
export interface ChatStackConfig {
  modelId: string;
  knowledgeBaseId: string | undefined;
  allowedOrigins: string[];
  streamMemoryMb: number;
  streamTimeoutSeconds: number;
  logRetentionDays: number;
  messageTtlDays: number;
  natGateway: boolean;
  deletionProtection: boolean;
  removalPolicy: 'retain' | 'destroy';
  alarmEmail: string | undefined;
  flushPaddingBytes: number;
}

export const DEFAULT_CONFIG: ChatStackConfig = {
  modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
  knowledgeBaseId: undefined,
  allowedOrigins: [],
  streamMemoryMb: 1024,
  streamTimeoutSeconds: 120,
  logRetentionDays: 30,
  messageTtlDays: 0,
  natGateway: false,
  deletionProtection: true,
  removalPolicy: 'retain',
  alarmEmail: undefined,
  flushPaddingBytes: 16_384,
};

function parse(raw: unknown, fallback: unknown): unknown {
  if (raw === undefined || raw === null || raw === '') return fallback;
  if (typeof raw !== 'string') return raw;
  if (typeof fallback === 'number') return Number(raw);
  if (typeof fallback === 'boolean') return raw === 'true';
  if (Array.isArray(fallback))
    return raw.startsWith('[') ? JSON.parse(raw) : raw.split(',').map((s) => s.trim());
  return raw;
}

export function readConfig(node: Node): ChatStackConfig {
  const config = { ...DEFAULT_CONFIG } as Record<string, unknown>;
  for (const key of Object.keys(DEFAULT_CONFIG)) {
    config[key] = parse(node.tryGetContext(`chat:${key}`), DEFAULT_CONFIG[key as keyof ChatStackConfig]);
  }
  const typed = config as unknown as ChatStackConfig;
  for (const key of [
    'streamMemoryMb',
    'streamTimeoutSeconds',
    'logRetentionDays',
    'messageTtlDays',
    'flushPaddingBytes',
  ] as const) {
    if (!Number.isFinite(typed[key]) || typed[key] < 0)
      throw new Error(`chat:${key} must be a non-negative number`);
  }
  if (!['retain', 'destroy'].includes(typed.removalPolicy))
    throw new Error('chat:removalPolicy must be retain or destroy');
  return typed;
}
