import { Duration } from 'aws-cdk-lib';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { type ISecurityGroup, Peer, Port, SecurityGroup, type Vpc } from 'aws-cdk-lib/aws-ec2';
import { CfnServerlessCache, CfnUser, CfnUserGroup } from 'aws-cdk-lib/aws-elasticache';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

export interface CacheProps {
  vpc: Vpc;
  subnetIds: string[];
  clients: ISecurityGroup[];
  dataStorageGb: number;
  ecpuPerSecond: number;
}

/**
 * ElastiCache Serverless (Valkey): TLS always on, cluster mode, reachable only from the given clients,
 * bounded by usage limits, and closed to the default user: the only user is an IAM-authenticated one,
 * so a connection needs both the network path and `elasticache:Connect`.
 */
export class Cache extends Construct {
  readonly cache: CfnServerlessCache;
  readonly securityGroup: SecurityGroup;
  /** The Valkey user the stream function authenticates as (IAM: user id and user name are the same). */
  readonly userName: string;
  private readonly user: CfnUser;

  constructor(scope: Construct, id: string, props: CacheProps) {
    super(scope, id);
    this.securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Valkey: 6379 (endpoint) and 6380 (read replicas) from the chat functions only',
      allowAllOutbound: false,
    });
    for (const client of props.clients) {
      this.securityGroup.addIngressRule(
        Peer.securityGroupId(client.securityGroupId),
        Port.tcpRange(6379, 6380),
        'Valkey from a chat function',
      );
    }
    // Ids are unique per account and Region: the suffix lets two stacks share one.
    const suffix = this.node.addr.slice(0, 8);
    this.userName = `chat-stream-${suffix}`;
    this.user = new CfnUser(this, 'StreamUser', {
      engine: 'valkey',
      userId: this.userName,
      userName: this.userName,
      authenticationMode: { Type: 'iam' },
      // The cache is this app's alone: the user may run every command on every key and channel.
      accessString: 'on ~* &* +@all',
    });
    const userGroup = new CfnUserGroup(this, 'Users', {
      engine: 'valkey',
      userGroupId: `chat-${suffix}`,
      userIds: [this.user.userId],
    });
    userGroup.node.addDependency(this.user);
    this.cache = new CfnServerlessCache(this, 'Valkey', {
      engine: 'valkey',
      majorEngineVersion: '8',
      serverlessCacheName: `${id.toLowerCase()}-${suffix}`,
      description: 'Chat profile, history and RAG cache',
      securityGroupIds: [this.securityGroup.securityGroupId],
      subnetIds: props.subnetIds,
      userGroupId: userGroup.ref,
      cacheUsageLimits: {
        dataStorage: { maximum: props.dataStorageGb, unit: 'GB' },
        ecpuPerSecond: { maximum: props.ecpuPerSecond },
      },
    });
  }

  /** TLS endpoint for ioredis (`rediss://`). */
  get url(): string {
    return `rediss://${this.cache.attrEndpointAddress}:${this.cache.attrEndpointPort}`;
  }

  get cacheName(): string {
    return this.cache.serverlessCacheName;
  }

  /** IAM authentication: connect to this cache as this user, nothing else. */
  grantConnect(grantee: IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['elasticache:Connect'],
        resources: [this.cache.attrArn, this.user.attrArn],
      }),
    );
  }

  /** Commands ElastiCache refused because the cache hit its ECPU limit or scaled too slowly. */
  metricThrottledCommands(period = Duration.minutes(1)): Metric {
    return new Metric({
      namespace: 'AWS/ElastiCache',
      metricName: 'ThrottledCmds',
      dimensionsMap: { clusterId: this.cacheName },
      statistic: 'Sum',
      period,
    });
  }
}
