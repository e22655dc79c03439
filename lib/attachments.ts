import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { IGrantable, IRole } from 'aws-cdk-lib/aws-iam';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeWildcardResource } from './nag.ts';

export interface AttachmentsProps {
  /** Messages expire this many days after they were written (0: never); their files follow them. */
  messageTtlDays: number;
  removalPolicy: RemovalPolicy;
}

/**
 * The bucket user attachments (images, PDFs) live in, keyed `users/<user>/sessions/<session>/…`: private
 * (all public access blocked, bucket-owner objects only), TLS only, encrypted (SSE-S3; every put asks for it
 * too), and expiring a day after the messages that point at them, so nothing outlives its conversation.
 */
export class Attachments extends Construct {
  readonly bucket: Bucket;

  constructor(scope: Construct, id: string, props: AttachmentsProps) {
    super(scope, id);
    this.bucket = new Bucket(this, 'Bucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        { abortIncompleteMultipartUploadAfter: Duration.days(1) },
        // DynamoDB's TTL deletes within days of expiry: a day's margin keeps a file while its message shows.
        ...(props.messageTtlDays > 0 ? [{ expiration: Duration.days(props.messageTtlDays + 1) }] : []),
      ],
      removalPolicy: props.removalPolicy,
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Only the stream function reads and writes the bucket, with its own role; each access is a turn or a delete the function logs (without content). Server access logs would add a second store of user keys to erase.',
    });
  }

  /** The consumer deletes the files of a message it discards (a turn that raced a delete), nothing else. */
  grantDiscards(grantee: IGrantable & { role?: IRole | undefined }): void {
    const objects = this.bucket.arnForObjects('users/*');
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['s3:DeleteObject'], resources: [objects] }),
    );
    if (grantee.role) {
      acknowledgeWildcardResource(
        grantee.role,
        objects,
        'The consumer deletes the files a discarded message points at; their keys are per user and session.',
      );
    }
  }

  /** Put and get (turns), list and delete (conversation delete, erasure) under `users/`, nothing else. */
  grantTurnsAndDeletes(grantee: IGrantable & { role?: IRole | undefined }): void {
    const objects = this.bucket.arnForObjects('users/*');
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'],
        resources: [objects],
      }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': ['users/*'] } },
      }),
    );
    if (grantee.role) {
      acknowledgeWildcardResource(
        grantee.role,
        objects,
        "Attachments are keyed per user and session at run time (users/<user>/sessions/<session>/...); the function's own routes scope every key to the verified user.",
      );
    }
  }
}
