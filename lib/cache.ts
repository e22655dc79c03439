import { type ISecurityGroup, Peer, Port, SecurityGroup, type Vpc } from 'aws-cdk-lib/aws-ec2';
import { CfnServerlessCache } from 'aws-cdk-lib/aws-elasticache';
import { Construct } from 'constructs';

export interface CacheProps {
  vpc: Vpc;
  subnetIds: string[];
  clients: ISecurityGroup[];
}

/** ElastiCache Serverless (Valkey): TLS always on, cluster mode, reachable only from the given clients. */
export class Cache extends Construct {
  readonly cache: CfnServerlessCache;
  readonly securityGroup: SecurityGroup;

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
    this.cache = new CfnServerlessCache(this, 'Valkey', {
      engine: 'valkey',
      majorEngineVersion: '8',
      serverlessCacheName: `${id.toLowerCase()}-${this.node.addr.slice(0, 8)}`,
      description: 'Chat profile, history and RAG cache',
      securityGroupIds: [this.securityGroup.securityGroupId],
      subnetIds: props.subnetIds,
    });
  }

  /** TLS endpoint for ioredis (`rediss://`). */
  get url(): string {
    return `rediss://${this.cache.attrEndpointAddress}:${this.cache.attrEndpointPort}`;
  }
}
