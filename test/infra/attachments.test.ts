import { beforeAll, describe, expect, it } from 'vitest';
import { nagReportFindings, resourcesOf, type Synthesized, statementsOf, synth } from './synth.ts';

// The attachments bucket: private, TLS only, encrypted, expiring after the messages, reachable from the
// isolated subnets, and granted to the stream function only.
let result: Synthesized;
beforeAll(() => {
  result = synth({ messageTtlDays: 30 }, { nag: true });
}, 120_000);

describe('attachments bucket', () => {
  it('is private, encrypted and expires a day after the messages', () => {
    const buckets = resourcesOf(result.template, 'AWS::S3::Bucket');
    const bucket = buckets.find(([, b]) => JSON.stringify(b.Properties).includes('"ExpirationInDays":31'));
    expect(bucket?.[1].Properties).toMatchObject({
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
    });
    const policies = resourcesOf(result.template, 'AWS::S3::BucketPolicy');
    expect(JSON.stringify(policies)).toContain('"aws:SecureTransport":"false"');
  });

  it('is granted to the stream function (put, get, delete, list under users/) and named in its environment', () => {
    const statements = statementsOf(result.template, 'ChatStream');
    const actions = statements.flatMap((s) => s.actions);
    expect(actions).toEqual(
      expect.arrayContaining(['s3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:ListBucket']),
    );
    // The consumer only deletes the files of a message it discards.
    const persist = statementsOf(result.template, 'Persist').flatMap((s) => s.actions);
    expect(persist.filter((a) => String(a).startsWith('s3:'))).toEqual(['s3:DeleteObject']);
    const fns = resourcesOf(result.template, 'AWS::Lambda::Function');
    expect(JSON.stringify(fns)).toContain('ATTACHMENTS_BUCKET');
  });

  it('leaves cdk-nag clean', () => {
    expect(nagReportFindings(result)).toEqual([]);
    expect(result.failure).toBeUndefined();
  });
});
