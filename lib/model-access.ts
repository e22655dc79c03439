import { CustomResource, Duration, Stack } from 'aws-cdk-lib';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { deployTimeProvider } from './deploy-time.ts';
import { ChatFunction } from './functions.ts';
import { type ModelRef, modelInvokeStatements } from './models.ts';
import { acknowledgeWildcardResource } from './nag.ts';

export interface ModelAccessProps {
  model: ModelRef;
  /** The allow-list's other models (chat:allowedModelIds): probed like the default, through the same guardrail. */
  otherModels?: readonly ModelRef[];
  /** The consumer's title model when it is another model: probed and subscribed the same way. */
  titleModel?: ModelRef;
  /** Marketplace product ids of the model: narrows the first-use subscription grant when given. */
  productIds: string[];
  /** The guardrail every turn goes through: the probe's Converse goes through it too. */
  guardrail?: { id: string; version: string; resources: string[] };
  logRetention: RetentionDays;
  deployNonce: string;
}

/** Longest the probe waits for a PENDING Marketplace agreement; the handler gets two more minutes. */
const AGREEMENT_BUDGET_MINUTES = 12;

/** ConverseStream is authorized as InvokeModelWithResponseStream, Converse as InvokeModel. */
const INVOKE_ACTIONS = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];

const probeProperties = (model: ModelRef, nonce: string) => ({
  ModelId: model.id,
  // An application profile ARN does not name its model; every other form does.
  ...('foundationModelId' in model ? { FoundationModelId: model.foundationModelId } : {}),
  DeployNonce: nonce,
});

/**
 * Who may invoke the configured model, and a deploy-time probe that proves the model answers before
 * the stream function exists: a custom resource outside the VPC calls Converse once with the same
 * model id and fails the deploy with AWS's message when it cannot. The probe is the account's first
 * caller of a new third-party model, so its role carries the Marketplace permissions that first-use
 * subscription needs; the stream function's role never does.
 */
export class ModelAccess extends Construct {
  readonly probe: CustomResource;
  /** The probes of every model a turn may use: the default's first, then one per other allowed model. */
  readonly chatProbes: readonly CustomResource[];
  /** The probe of the title model, when it is another model than the chat model. */
  readonly titleProbe: CustomResource | undefined;
  /** The probe function's role (the guardrail's grant is added by the stack, which knows it). */
  readonly probeRole: IRole;
  private readonly model: ModelRef;

  constructor(scope: Construct, id: string, props: ModelAccessProps) {
    super(scope, id);
    this.model = props.model;
    const probe = new ChatFunction(this, 'Probe', {
      entry: 'lib/custom-resources/model-probe.ts',
      description:
        'Deploy time: invokes the configured Bedrock model once (Converse, one token) and waits for its Marketplace agreement',
      memorySize: 256,
      // Converse with its IAM waits (about 2 minutes at worst) plus the agreement budget; under the
      // Provider framework's own 15-minute limit.
      timeout: Duration.minutes(AGREEMENT_BUDGET_MINUTES + 2),
      logRetention: props.logRetention,
      environment: {},
    });
    const role = probe.fn.role as IRole;
    this.probeRole = role;
    this.grantInvoke(role, ['bedrock:InvokeModel']);
    for (const other of props.otherModels ?? []) this.grantInvoke(role, ['bedrock:InvokeModel'], other);
    if (props.titleModel) this.grantInvoke(role, ['bedrock:InvokeModel'], props.titleModel);
    if (props.guardrail)
      role.addToPrincipalPolicy(
        new PolicyStatement({ actions: ['bedrock:ApplyGuardrail'], resources: props.guardrail.resources }),
      );
    // Bedrock's documented first-use prerequisites: Subscribe and Unsubscribe (optionally per product id)
    // and ViewSubscriptions; GetFoundationModelAvailability reports when the agreement went through.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['aws-marketplace:Subscribe', 'aws-marketplace:Unsubscribe'],
        resources: ['*'],
        ...(props.productIds.length > 0
          ? { conditions: { 'ForAnyValue:StringEquals': { 'aws-marketplace:ProductId': props.productIds } } }
          : {}),
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['aws-marketplace:ViewSubscriptions', 'bedrock:GetFoundationModelAvailability'],
        resources: ['*'],
      }),
    );
    acknowledgeWildcardResource(
      role,
      '*',
      'Marketplace subscription actions and bedrock:GetFoundationModelAvailability have no resource type (aws-marketplace:ProductId is the only narrowing, applied when chat:modelProductIds is set); only the deploy-time probe holds them.',
    );
    const { serviceToken } = deployTimeProvider(this, 'ProbeProvider', probe.fn, props.logRetention);
    const guardrailProperties = props.guardrail
      ? { GuardrailId: props.guardrail.id, GuardrailVersion: props.guardrail.version }
      : {};
    const chatProbe = (id: string, model: ModelRef) =>
      new CustomResource(this, id, {
        serviceToken,
        resourceType: 'Custom::ModelProbe',
        properties: { ...probeProperties(model, props.deployNonce), ...guardrailProperties },
      });
    this.probe = chatProbe('Invoke', props.model);
    this.chatProbes = [
      this.probe,
      ...(props.otherModels ?? []).map((other, index) => chatProbe(`InvokeAllowedModel${index + 1}`, other)),
    ];
    // Titles are written without the guardrail (a few words from the conversation's own first turn).
    this.titleProbe = props.titleModel
      ? new CustomResource(this, 'InvokeTitleModel', {
          serviceToken,
          resourceType: 'Custom::ModelProbe',
          properties: probeProperties(props.titleModel, props.deployNonce),
        })
      : undefined;
  }

  /** Adds the statements that let `role` invoke `model` (the chat model unless given) in every form its id may take. */
  grantInvoke(role: IRole, actions: string[] = INVOKE_ACTIONS, model: ModelRef = this.model): void {
    const stack = Stack.of(this);
    for (const statement of modelInvokeStatements(stack, model, actions)) {
      role.addToPrincipalPolicy(statement);
      for (const resource of statement.resources.filter((r) => r.includes('*')))
        acknowledgeWildcardResource(
          role,
          resource,
          'A cross-Region inference profile routes each request to its foundation model in any Region of its geography (and, for global and application profiles, the Region-less model ARN); the condition limits it to this profile.',
        );
    }
  }
}
