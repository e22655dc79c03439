import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import type { PageConfig } from '../../functions/contracts/page-config.ts';
import { ChatStack } from '../../lib/chat-stack.ts';
import { parseConfig, stageNames } from '../../lib/config.ts';

/** The CDK feature flags cdk.json pins (every key that is not a chat: setting): tests synthesize with them as a deploy does. */
const FEATURE_FLAGS: Record<string, unknown> = Object.fromEntries(
  Object.entries(
    (
      JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'cdk.json'), 'utf8')) as {
        context: Record<string, unknown>;
      }
    ).context,
  ).filter(([key]) => !key.startsWith('chat:')),
);

/** A fixed nonce keeps templates comparable; production synths take the time of the synth. */
export const TEST_NONCE = '2026-11-27T12:00:00.000Z';

export interface SynthOptions {
  /** Bundle the functions with esbuild (slow); without it assets are placeholders. */
  bundle?: boolean;
  /** Register cdk-nag AwsSolutions, as bin/app.ts does. */
  nag?: boolean;
  /** An explicit stack Region (what chat:region does in bin/app.ts). */
  region?: string;
}

export interface Synthesized {
  app: App;
  stack: ChatStack;
  outdir: string;
  failure: unknown;
  template: Template;
  /** Warnings and errors the constructs annotated, read from the tree (Annotations.fromStack would synthesize again). */
  messages: (level: 'warning' | 'error') => Array<{ path: string; text: string }>;
}

/** Synthesizes the stack offline from context values (as cdk.json or `-c chat:<key>=…` would give them). */
export function synth(context: Record<string, unknown> = {}, options: SynthOptions = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'cdk-'));
  const app = new App({
    outdir,
    context: {
      ...FEATURE_FLAGS,
      'aws:cdk:enable-asset-metadata': true,
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
    },
  });
  const config = parseConfig({ deployNonce: TEST_NONCE, ...context });
  const stack = new ChatStack(app, stageNames(config.stage).stackName, {
    config,
    ...(options.region ? { env: { region: options.region } } : {}),
  });
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  let failure: unknown;
  try {
    app.synth();
  } catch (error) {
    failure = error;
  }
  let template: Template | undefined;
  return {
    app,
    stack,
    outdir,
    failure,
    // Read on demand: a synth that failed validation (an error annotation) throws again here.
    get template() {
      template ??= Template.fromStack(stack);
      return template;
    },
    messages: (level) => messagesOf(stack, level),
  };
}

export type Resource = {
  Type: string;
  Properties: Record<string, unknown>;
  Metadata?: Record<string, string>;
  DependsOn?: string[];
  DeletionPolicy?: string;
};

export type Statement = {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
  Sid?: string;
};

export const resourcesOf = (template: Template, type: string) =>
  Object.entries(template.findResources(type)) as Array<[string, Resource]>;

/** Every statement of the IAM policies whose logical id contains `fragment`, with actions as a list. */
export function statementsOf(template: Template, fragment: string) {
  return resourcesOf(template, 'AWS::IAM::Policy')
    .filter(([id]) => id.includes(fragment))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
    .map((s) => ({ ...s, actions: [s.Action].flat(), resource: JSON.stringify(s.Resource) }));
}

function messagesOf(root: IConstruct, level: 'warning' | 'error') {
  const type = level === 'error' ? 'aws:cdk:error' : 'aws:cdk:warning';
  const found: Array<{ path: string; text: string }> = [];
  const visit = (node: IConstruct) => {
    for (const entry of node.node.metadata)
      if (entry.type === type) found.push({ path: node.node.path, text: String(entry.data) });
    for (const child of node.node.children) visit(child);
  };
  visit(root);
  return found;
}

/**
 * Every acknowledgement recorded with Validations.of(…).acknowledge, with where it was made. CDK records
 * each one twice (the id as given and with an `Annotation::` prefix); they are listed once.
 */
function acknowledgementsIn(root: IConstruct) {
  const found = new Map<string, { id: string; reason: string; path: string }>();
  const visit = (node: IConstruct) => {
    for (const entry of node.node.metadata)
      if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY && entry.data)
        for (const [raw, reason] of Object.entries(entry.data as Record<string, string>)) {
          const id = raw.replace(/^annotation::/i, '');
          found.set(`${id} at ${node.node.path}`, { id, reason, path: node.node.path });
        }
    for (const child of node.node.children) visit(child);
  };
  visit(root);
  return [...found.values()];
}

/** cdk-nag's findings as if nothing had been acknowledged. */
function rawNagFindings(stack: Stack) {
  const pack = new AwsSolutionsChecks();
  // Its acknowledgement check walks the construct's metadata; switched off, every finding is reported.
  Object.defineProperty(pack, 'isAcknowledged', { value: () => false });
  return pack
    .validateScope(stack)
    .violations.flatMap((v) =>
      v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath ?? '' })),
    );
}

const covers = (ack: { id: string; path: string }, finding: { id: string; path: string }) =>
  ack.id === finding.id && (finding.path === ack.path || finding.path.startsWith(`${ack.path}/`));

/**
 * Holds every acknowledgement against what cdk-nag finds with acknowledgements switched off: each one
 * needs a reason (40 characters or more) and must cover a finding on its construct or below; each
 * finding must be covered. `foreign` lists acknowledgements that are neither cdk-nag's nor CDK's own
 * CloudFormation-Validate ones.
 */
export function auditAcknowledgements(stack: Stack) {
  const findings = rawNagFindings(stack);
  const all = acknowledgementsIn(stack);
  const nag = all.filter((a) => a.id.startsWith('AwsSolutions-'));
  const where = (x: { id: string; path: string }) => `${x.id} at ${x.path}`;
  return {
    acknowledged: nag.length,
    withoutReason: nag.filter((a) => a.reason.trim().length < 40).map(where),
    unmatched: nag.filter((a) => !findings.some((f) => covers(a, f))).map(where),
    unacknowledged: findings.filter((f) => !nag.some((a) => covers(a, f))).map(where),
    foreign: all
      .filter((a) => !a.id.startsWith('AwsSolutions-') && !a.id.startsWith('CloudFormation-Validate::'))
      .map(where),
  };
}

/** cdk-nag's findings in a synth's validation report (what fails `cdk synth`), as "rule at path". */
export function nagReportFindings(result: Synthesized): string[] {
  type Offender = { constructPath: string };
  // Report schema 55 (with @aws-cdk/core:annotationsInValidationReport) names them violatingConstructs.
  const report = JSON.parse(readFileSync(join(result.outdir, 'validation-report.json'), 'utf8')) as {
    pluginReports: Array<{
      pluginName: string;
      violations: Array<{
        ruleName: string;
        violatingResources?: Offender[];
        violatingConstructs?: Offender[];
      }>;
    }>;
  };
  return report.pluginReports
    .filter((p) => p.pluginName === 'AwsSolutions')
    .flatMap((p) =>
      p.violations.flatMap((v) =>
        [...(v.violatingResources ?? []), ...(v.violatingConstructs ?? [])].map(
          (c) => `${v.ruleName} at ${c.constructPath}`,
        ),
      ),
    );
}

/**
 * A CloudFormation value as the deployed string, for the intrinsics the stack writes (Ref, GetAtt, Join,
 * Select, Split); `known` gives a deployed value per `Ref` name or `Id.Attribute`, anything else reads
 * `<name>`.
 */
export function resolveIntrinsics(value: unknown, known: Record<string, string> = {}): string {
  const list = (v: unknown): string[] => {
    const node = v as Record<string, unknown>;
    if (Array.isArray(v)) return v.map((item) => resolveIntrinsics(item, known));
    if (node && 'Fn::Split' in node) {
      const [separator, text] = node['Fn::Split'] as [string, unknown];
      return resolveIntrinsics(text, known).split(separator);
    }
    throw new Error(`not a list: ${JSON.stringify(v)}`);
  };
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  const node = value as Record<string, unknown>;
  if ('Ref' in node) return known[String(node.Ref)] ?? `<${String(node.Ref)}>`;
  if ('Fn::GetAtt' in node) {
    const name = (node['Fn::GetAtt'] as string[]).join('.');
    return known[name] ?? `<${name}>`;
  }
  if ('Fn::Join' in node) {
    const [separator, parts] = node['Fn::Join'] as [string, unknown[]];
    return parts.map((part) => resolveIntrinsics(part, known)).join(separator);
  }
  if ('Fn::Select' in node) {
    const [index, from] = node['Fn::Select'] as [number, unknown];
    return list(from)[index] ?? '';
  }
  throw new Error(`unresolved intrinsic: ${JSON.stringify(value)}`);
}

export const FUNCTION_URL_HOST = 'abc123.lambda-url.us-east-1.on.aws';

/** Deployed values for the tokens the page's settings are made of, as an account in us-east-1 would give them. */
export function deployed(from: Template): Record<string, string> {
  const known: Record<string, string> = {
    'AWS::AccountId': '123456789012',
    'AWS::Region': 'us-east-1',
    'AWS::Partition': 'aws',
  };
  for (const [id] of resourcesOf(from, 'AWS::Lambda::Url'))
    known[`${id}.FunctionUrl`] = `https://${FUNCTION_URL_HOST}/`;
  for (const [id] of resourcesOf(from, 'AWS::CloudFront::Distribution'))
    known[`${id}.DomainName`] = 'd111111abcdef8.cloudfront.net';
  for (const [id, domain] of resourcesOf(from, 'AWS::Cognito::UserPoolDomain'))
    known[id] = resolveIntrinsics(domain.Properties.Domain, known);
  for (const [id] of resourcesOf(from, 'AWS::Cognito::UserPoolClient')) known[id] = '<WebClientId>';
  for (const [id] of resourcesOf(from, 'AWS::ApiGateway::RestApi')) known[id] = 'api123';
  for (const [id, stage] of resourcesOf(from, 'AWS::ApiGateway::Stage'))
    known[id] = String(stage.Properties.StageName);
  known['AWS::URLSuffix'] = 'amazonaws.com';
  return known;
}

/** The config.json the page reads, its tokens resolved as `deployed` says. */
export function pageConfigOf(result: Synthesized): PageConfig {
  const [[, deployment]] = resourcesOf(result.template, 'Custom::CDKBucketDeployment') as [
    [string, Resource],
  ];
  const keys = deployment.Properties.SourceObjectKeys as string[];
  const markers = deployment.Properties.SourceMarkers as Array<Record<string, unknown>>;
  const configAt = markers.findIndex((m) => Object.keys(m).length > 0);
  let text = readFileSync(
    join(result.outdir, `asset.${String(keys[configAt]).replace(/\.zip$/, '')}`, 'config.json'),
    'utf8',
  );
  const known = deployed(result.template);
  for (const [marker, value] of Object.entries(markers[configAt] ?? {}))
    text = text.split(marker).join(resolveIntrinsics(value, known));
  return JSON.parse(text) as PageConfig;
}
