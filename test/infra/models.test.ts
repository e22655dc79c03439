import { Token } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkModelRegion, type ModelRef, parseModelId } from '../../lib/models.ts';
import { type Synthesized, statementsOf, synth } from './synth.ts';

const HAIKU = 'anthropic.claude-haiku-4-5-20251001-v1:0';
const APP_PROFILE = 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6';
const parsed = (id: string) => parseModelId(id) as ModelRef;

describe('model ids', () => {
  it('recognizes every geography prefix, global, foundation model ids and application profile ARNs', () => {
    for (const geography of ['us', 'eu', 'apac', 'jp', 'au', 'ca', 'us-gov'])
      expect(parseModelId(`${geography}.${HAIKU}`)).toEqual({
        kind: 'geography-profile',
        id: `${geography}.${HAIKU}`,
        geography,
        foundationModelId: HAIKU,
      });
    expect(parseModelId(`global.${HAIKU}`)).toEqual({
      kind: 'global-profile',
      id: `global.${HAIKU}`,
      foundationModelId: HAIKU,
    });
    for (const id of [
      HAIKU,
      'amazon.nova-lite-v1:0',
      'meta.llama3-1-8b-instruct-v1:0',
      'zai.glm-4.6',
      'mistral.mistral-7b-instruct-v0:2',
    ])
      expect(parseModelId(id), id).toEqual({ kind: 'foundation-model', id, foundationModelId: id });
    expect(parseModelId(APP_PROFILE)).toEqual({
      kind: 'application-profile',
      id: APP_PROFILE,
      region: 'us-east-1',
      account: '123456789012',
    });
  });

  it('rejects anything else, naming the accepted forms', () => {
    for (const id of [
      'claude',
      'US.anthropic.claude-v1',
      'arn:aws:bedrock:us-east-1::foundation-model/x',
      'us.',
      '',
    ])
      expect((parseModelId(id) as { error: string }).error, id).toMatch(
        /not a model id; expected a foundation model id/,
      );
  });
});

describe('profile geography against the stack Region', () => {
  const fits: Array<[string, string]> = [
    ['us', 'us-east-1'],
    ['us', 'us-west-2'],
    ['eu', 'eu-central-1'],
    ['apac', 'ap-south-1'],
    ['jp', 'ap-northeast-1'],
    ['jp', 'ap-northeast-3'],
    ['au', 'ap-southeast-2'],
    ['ca', 'ca-central-1'],
    ['us-gov', 'us-gov-west-1'],
  ];
  const misfits: Array<[string, string]> = [
    ['us', 'eu-west-1'],
    ['us', 'us-gov-west-1'],
    ['eu', 'us-east-1'],
    ['jp', 'ap-southeast-1'],
    ['au', 'ap-northeast-1'],
    ['apac', 'eu-west-1'],
  ];

  it('accepts a profile used from a Region of its geography', () => {
    for (const [geography, region] of fits)
      expect(checkModelRegion(parsed(`${geography}.${HAIKU}`), region), `${geography} ${region}`).toEqual({});
  });

  it('refuses a profile used from another geography', () => {
    for (const [geography, region] of misfits)
      expect(
        checkModelRegion(parsed(`${geography}.${HAIKU}`), region).error,
        `${geography} ${region}`,
      ).toContain(`cannot be invoked from ${region}`);
  });

  it('lets global profiles and foundation models through anywhere, and an application profile only in its Region', () => {
    expect(checkModelRegion(parsed(`global.${HAIKU}`), 'sa-east-1')).toEqual({});
    expect(checkModelRegion(parsed(HAIKU), 'eu-west-3')).toEqual({});
    expect(checkModelRegion(parsed(APP_PROFILE), 'us-east-1')).toEqual({});
    expect(checkModelRegion(parsed(APP_PROFILE), 'us-west-2').error).toContain('deploys to us-west-2');
  });

  it('warns when it cannot check: no explicit Region, or a geography it does not know', () => {
    const agnostic = Token.asString({ Ref: 'AWS::Region' });
    expect(checkModelRegion(parsed(`us.${HAIKU}`), agnostic).warning).toContain('no explicit Region');
    expect(checkModelRegion(parsed(APP_PROFILE), agnostic).warning).toContain('chat:region=us-east-1');
    expect(checkModelRegion(parsed(`xy.${HAIKU}`), 'us-east-1').warning).toContain('does not know');
  });
});

describe('model grants and checks on the synthesized stack', () => {
  // Each form with the Region it is deployed to (none: environment-agnostic, as by default).
  const FORMS: Record<string, [modelId: string, region?: string]> = {
    geography: [`us.${HAIKU}`],
    global: [`global.${HAIKU}`],
    foundation: [HAIKU],
    application: [APP_PROFILE, 'us-east-1'],
    jp: [`jp.${HAIKU}`, 'ap-northeast-1'],
    mismatch: [`eu.${HAIKU}`, 'us-east-1'],
    appElsewhere: [APP_PROFILE, 'eu-west-1'],
  };
  const forms: Record<string, Synthesized> = {};
  beforeAll(() => {
    for (const [form, [modelId, region]] of Object.entries(FORMS))
      forms[form] = region ? synth({ modelId, region }, { region }) : synth({ modelId });
  }, 60_000);

  const invoke = (form: string, role: string) =>
    statementsOf(forms[form]?.template ?? expect.unreachable(form), role).filter((s) =>
      s.actions.some((a) => a.startsWith('bedrock:Invoke')),
    );
  const profileCondition = (profile: unknown) => ({
    StringEquals: { 'bedrock:InferenceProfileArn': profile },
  });

  it('geography profile: the profile in the stack Region, and its model in any Region only through that profile', () => {
    const [profile, models] = invoke('geography', 'ChatStream');
    expect(invoke('geography', 'ChatStream')).toHaveLength(2);
    expect(profile?.actions).toEqual(['bedrock:InvokeModelWithResponseStream']);
    expect(profile?.resource).toContain(
      ':bedrock:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":inference-profile/us.',
    );
    expect(profile?.Condition).toBeUndefined();
    expect(models?.resource).toContain(`:bedrock:*::foundation-model/${HAIKU}`);
    expect(models?.Condition).toEqual(profileCondition(profile?.Resource));
  });

  it('global profile: also the Region-less foundation model ARN', () => {
    const [profile, models] = invoke('global', 'ChatStream');
    expect(profile?.resource).toContain(`:inference-profile/global.${HAIKU}`);
    expect(models?.resource).toContain(`:bedrock:*::foundation-model/${HAIKU}`);
    expect(models?.resource).toContain(`:bedrock:::foundation-model/${HAIKU}`);
    expect(models?.Condition).toEqual(profileCondition(profile?.Resource));
  });

  it('foundation model id: the model in the stack Region, nothing else', () => {
    const statements = invoke('foundation', 'ChatStream');
    expect(statements).toHaveLength(1);
    expect(statements[0]?.resource).toContain(`"},"::foundation-model/${HAIKU}"`);
    expect(statements[0]?.resource).not.toContain('*');
    expect(statements[0]?.resource).not.toContain('inference-profile');
  });

  it('application profile ARN: the ARN itself, and models only through it (the ARN does not name its model)', () => {
    const [profile, models] = invoke('application', 'ChatStream');
    expect(profile?.Resource).toBe(APP_PROFILE);
    expect(models?.Condition).toEqual(profileCondition(APP_PROFILE));
    expect(models?.resource).toContain('foundation-model/*');
  });

  it('gives the probe role InvokeModel (Converse) and the stream role only InvokeModelWithResponseStream (ConverseStream), on the same resources', () => {
    for (const form of ['geography', 'global', 'foundation', 'application']) {
      const probe = invoke(form, 'ModelProbe');
      const stream = invoke(form, 'ChatStream');
      expect(
        probe.map((s) => s.Resource),
        form,
      ).toEqual(stream.map((s) => s.Resource));
      for (const s of probe) expect(s.actions, form).toEqual(['bedrock:InvokeModel']);
      // The stream function only streams: no InvokeModel (review N14).
      for (const s of stream) expect(s.actions, form).toEqual(['bedrock:InvokeModelWithResponseStream']);
    }
  });

  it('probes the configured model at deploy time, before the stream function exists, and on every deploy', () => {
    for (const [form, { template }] of Object.entries(forms).filter(
      ([f]) => !['mismatch', 'appElsewhere'].includes(f),
    )) {
      const probes = template.findResources('Custom::ModelProbe');
      expect(Object.keys(probes), form).toHaveLength(1);
      const [probeId, probe] = Object.entries(probes)[0] as [string, { Properties: Record<string, unknown> }];
      expect(probe.Properties.ModelId, form).toBe(FORMS[form]?.[0]);
      expect(probe.Properties.DeployNonce, form).toBeDefined();
      // The model whose Marketplace agreement the probe waits for; an application profile names none.
      expect(probe.Properties.FoundationModelId, form).toBe(form === 'application' ? undefined : HAIKU);
      template.hasResource('AWS::Lambda::Function', {
        Properties: Match.objectLike({ Description: Match.stringLikeRegexp('Streams chat') }),
        DependsOn: Match.arrayWith([probeId]),
      });
    }
  });

  it('fails the synth when a profile does not fit the stack Region, and passes when it does', () => {
    expect(forms.jp?.messages('error')).toEqual([]);
    expect(forms.application?.messages('error')).toEqual([]);
    expect(forms.mismatch?.messages('error')).toEqual([
      { path: 'StreamingChat', text: expect.stringContaining('cannot be invoked from us-east-1') },
    ]);
    expect(forms.appElsewhere?.messages('error')).toEqual([
      { path: 'StreamingChat', text: expect.stringContaining('deploys to eu-west-1') },
    ]);
    expect(forms.geography?.messages('warning')).toContainEqual({
      path: 'StreamingChat',
      text: expect.stringContaining('no explicit Region'),
    });
  });
});

describe('allowed models (chat:allowedModelIds)', () => {
  const SONNET = 'anthropic.claude-sonnet-4-5-20250929-v1:0';
  const NOVA = 'amazon.nova-lite-v1:0';
  let allowed: Synthesized;
  beforeAll(() => {
    allowed = synth(
      { modelId: `us.${HAIKU}`, allowedModelIds: ` us.${SONNET}, ${NOVA},us.${HAIKU}`, region: 'us-east-1' },
      { region: 'us-east-1' },
    );
  }, 60_000);
  const invokeResources = (role: string) =>
    statementsOf(allowed.template, role)
      .filter((s) => s.actions.some((a) => a.startsWith('bedrock:Invoke')))
      .map((s) => s.resource);
  const streamEnv = () => {
    const [, fn] =
      Object.entries(allowed.template.findResources('AWS::Lambda::Function')).find(([, f]) =>
        String(f.Properties?.Description).startsWith('Streams chat'),
      ) ?? expect.unreachable('stream function');
    return fn.Properties.Environment.Variables as Record<string, string>;
  };

  it('grants the stream role ConverseStream on each allowed model, profile and foundation models alike', () => {
    const stream = statementsOf(allowed.template, 'ChatStream').filter((s) =>
      s.actions.some((a) => a.startsWith('bedrock:Invoke')),
    );
    for (const s of stream) expect(s.actions).toEqual(['bedrock:InvokeModelWithResponseStream']);
    // One row per granted resource (CDK merges unconditioned statements), with the profile it is reached through.
    const grants = stream.flatMap((s) =>
      [s.Resource].flat().map((r) => ({
        resource: JSON.stringify(r),
        through: JSON.stringify(s.Condition?.StringEquals?.['bedrock:InferenceProfileArn'] ?? null),
      })),
    );
    const grant = (fragment: string) => grants.filter((g) => g.resource.includes(fragment));
    // Default and Sonnet are geography profiles (profile + its model through it); Nova is a foundation model.
    expect(grants).toHaveLength(5);
    expect(grant(`us-east-1::foundation-model/${NOVA}"`)).toEqual([
      expect.objectContaining({ through: 'null' }),
    ]);
    for (const model of [HAIKU, SONNET]) {
      const [profile] = grant(`:inference-profile/us.${model}"`);
      expect(profile?.through, model).toBe('null');
      expect(grant(`:bedrock:*::foundation-model/${model}"`), model).toEqual([
        { resource: expect.any(String), through: profile?.resource },
      ]);
    }
    // The probe may Converse on exactly the same resources.
    expect(invokeResources('ModelProbe').sort()).toEqual(invokeResources('ChatStream').sort());
  });

  it('writes the other models to ALLOWED_MODEL_IDS, the default once, in MODEL_ID', () => {
    expect(streamEnv()).toMatchObject({ MODEL_ID: `us.${HAIKU}`, ALLOWED_MODEL_IDS: `us.${SONNET},${NOVA}` });
    expect(streamEnv().ALLOWED_MODEL_IDS?.split(',')).not.toContain(`us.${HAIKU}`);
  });

  it('probes every allowed model at deploy time, and the stream function waits for all probes', () => {
    const probes = Object.entries(allowed.template.findResources('Custom::ModelProbe'));
    expect(probes.map(([, p]) => p.Properties.ModelId)).toEqual([`us.${HAIKU}`, `us.${SONNET}`, NOVA]);
    for (const [, p] of probes) expect(p.Properties.DeployNonce).toBeDefined();
    allowed.template.hasResource('AWS::Lambda::Function', {
      Properties: Match.objectLike({ Description: Match.stringLikeRegexp('Streams chat') }),
      DependsOn: Match.arrayWith(probes.map(([id]) => id)),
    });
  });

  it('without chat:allowedModelIds writes no ALLOWED_MODEL_IDS', () => {
    const plain = synth({});
    const fn = Object.values(plain.template.findResources('AWS::Lambda::Function')).find((f) =>
      String(f.Properties?.Description).startsWith('Streams chat'),
    );
    expect(fn?.Properties.Environment.Variables).not.toHaveProperty('ALLOWED_MODEL_IDS');
  }, 60_000);

  it('refuses an id that is no model id at synth, naming the key and the id', () => {
    expect(() => synth({ allowedModelIds: `${NOVA},gpt-4o` })).toThrow(
      /chat:allowedModelIds\.1: "gpt-4o" is not a model id; expected a foundation model id/,
    );
    expect(() => synth({ allowedModelIds: 42 })).toThrow(/chat:allowedModelIds: must be a list/);
  });

  it('refuses an allowed profile the stack Region cannot invoke, as for chat:modelId', () => {
    const mismatch = synth({ allowedModelIds: `eu.${SONNET}` }, { region: 'us-east-1' });
    expect(mismatch.messages('error')).toEqual([
      {
        path: 'StreamingChat',
        text: expect.stringMatching(/^chat:allowedModelIds "eu\..*cannot be invoked from us-east-1/),
      },
    ]);
  }, 60_000);
});
