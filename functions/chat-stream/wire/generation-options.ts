import { modelCapabilities } from '../../contracts/models.ts';
import { RequestRejected } from '../../core/errors.ts';
import type { InferenceSettings } from '../../core/ports.ts';

/** What one deployment lets a client choose: its allowed models (default first) and its answer-length cap. */
export interface ModelPolicy {
  /** The deployment's allowed models; the first is the default. */
  allowed: readonly string[];
  /** The most output tokens an answer may have on this deployment (`MAX_TOKENS`), whatever the model. */
  maxTokens: number;
}

/** OpenAI's own limit on stop sequences; Converse takes at least as many for every model in the table. */
const MAX_STOP_SEQUENCES = 4;
const MAX_STOP_CHARS = 100;
/** Converse's temperature range for every model in the table (OpenAI's goes to 2). */
const MAX_TEMPERATURE = 1;

const invalid = (code: string, field: string, message: string, extra: Record<string, unknown> = {}) =>
  new RequestRejected('invalid', code, message, { field, ...extra });

/** The model a request names, if the deployment allows it; the default when it names none. */
export function chooseModel(policy: ModelPolicy, requested: unknown, field: string): string {
  const [defaultModel] = policy.allowed;
  if (defaultModel === undefined) throw new Error('A deployment allows at least one model.');
  if (requested === undefined || requested === null) return defaultModel;
  if (typeof requested === 'string' && policy.allowed.includes(requested)) return requested;
  throw invalid(
    'model_not_allowed',
    field,
    `${field} must be one of this deployment's models: ${policy.allowed.join(', ')}.`,
    { allowed: policy.allowed },
  );
}

/** The answer-length cap for a model: the deployment's, or the model's own when that is lower. */
const maxTokensFor = (policy: ModelPolicy, modelId: string): number =>
  Math.min(policy.maxTokens, modelCapabilities(modelId).maxOutputTokens ?? policy.maxTokens);

/** The request's names for the generation settings (each route keeps its client's vocabulary). */
export interface SettingFields {
  maxTokens: string;
  temperature: string;
  topP: string;
  stop: string;
}

export interface RequestedSettings {
  maxTokens?: unknown;
  temperature?: unknown;
  topP?: unknown;
  stop?: unknown;
}

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const given = (value: unknown) => value !== undefined && value !== null;

/** Above the cap is clamped to it: a budget, which the answer then ends on with `length`. */
function maxTokensOf(value: unknown, field: string, cap: number): number {
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw invalid('invalid_value', field, `${field} must be a positive integer.`);
  }
  return Math.min(value as number, cap);
}

function temperatureOf(value: unknown, field: string): number {
  if (!isNumber(value) || value < 0 || value > MAX_TEMPERATURE) {
    throw invalid(
      'invalid_value',
      field,
      `${field} must be a number from 0 to ${MAX_TEMPERATURE} (the models here take no more).`,
    );
  }
  return value;
}

/** `undefined` for 1: keeping every token is the same as no nucleus sampling, so nothing is sent. */
function topPOf(value: unknown, field: string): number | undefined {
  if (!isNumber(value) || value <= 0 || value > 1) {
    throw invalid('invalid_value', field, `${field} must be a number above 0 and at most 1.`);
  }
  return value < 1 ? value : undefined;
}

function stopOf(value: unknown, field: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  const valid =
    Array.isArray(list) &&
    list.length <= MAX_STOP_SEQUENCES &&
    list.every((s) => typeof s === 'string' && s.length > 0 && s.length <= MAX_STOP_CHARS);
  if (!valid) {
    throw invalid(
      'invalid_value',
      field,
      `${field} must be a string or up to ${MAX_STOP_SEQUENCES} strings of 1 to ${MAX_STOP_CHARS} characters.`,
    );
  }
  return list as string[];
}

/**
 * The client's generation settings within the chosen model's and the deployment's caps. An answer
 * length above the cap is clamped to it (a budget: the answer ends with `length`); anything outside
 * its range, or a setting the model cannot take, is refused with a 400 naming the field.
 */
export function inferenceSettings(
  policy: ModelPolicy,
  modelId: string,
  requested: RequestedSettings,
  fields: SettingFields,
): InferenceSettings {
  const { maxTokens, temperature, topP, stop } = requested;
  const settings: InferenceSettings = {
    ...(given(maxTokens)
      ? { maxTokens: maxTokensOf(maxTokens, fields.maxTokens, maxTokensFor(policy, modelId)) }
      : {}),
    ...(given(temperature) ? { temperature: temperatureOf(temperature, fields.temperature) } : {}),
  };
  const nucleus = given(topP) ? topPOf(topP, fields.topP) : undefined;
  if (nucleus !== undefined) {
    if (settings.temperature !== undefined && modelCapabilities(modelId).samplingExclusive) {
      throw invalid(
        'unsupported_value',
        fields.topP,
        `${modelId} takes ${fields.temperature} or ${fields.topP}, not both.`,
      );
    }
    settings.topP = nucleus;
  }
  const sequences = given(stop) ? stopOf(stop, fields.stop) : [];
  if (sequences.length > 0) settings.stopSequences = sequences;
  return settings;
}
