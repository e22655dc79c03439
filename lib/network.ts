import { RemovalPolicy } from 'aws-cdk-lib';
import {
  type CfnSubnet,
  FlowLogDestination,
  GatewayVpcEndpointAwsService,
  InterfaceVpcEndpointAwsService,
  type ISecurityGroup,
  Peer,
  Port,
  SecurityGroup,
  type SubnetSelection,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  natGateway: boolean;
  logRetention: RetentionDays;
  /**
   * AZ ids (use1-az1) or names (us-east-1a) where every endpoint service and ElastiCache Serverless
   * exist; empty takes the Region's first two AZ names (Fn::GetAZs), whatever they support.
   */
  availabilityZones: string[];
  /**
   * A CloudWatch Logs interface endpoint: functions on Lambda Managed Instances send their logs (and EMF
   * metrics) from the instances in these subnets, not from Lambda's own network.
   */
  logsEndpoint?: boolean;
}

/** An AZ id such as use1-az1 (as opposed to a name such as us-east-1a). */
export const AZ_ID = /^[a-z]{2,4}\d+-az\d+$/;

/**
 * A VPC for the stream function and the cache. By default no NAT: isolated subnets in 2 AZs reach
 * DynamoDB (gateway), SQS and Bedrock (interface endpoints); nothing else leaves the VPC.
 */
export class Network extends Construct {
  readonly vpc: Vpc;
  readonly functionSubnets: SubnetSelection;
  readonly functionSecurityGroup: ISecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    const subnetType = props.natGateway ? SubnetType.PRIVATE_WITH_EGRESS : SubnetType.PRIVATE_ISOLATED;
    const zones = props.availabilityZones;
    this.vpc = new Vpc(this, 'Vpc', {
      ...(zones.length > 0 ? { availabilityZones: zones } : { maxAzs: 2 }),
      natGateways: props.natGateway ? 1 : 0,
      subnetConfiguration: [
        ...(props.natGateway ? [{ name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 }] : []),
        { name: 'app', subnetType, cidrMask: 22 },
      ],
      flowLogs: {
        all: {
          destination: FlowLogDestination.toCloudWatchLogs(
            new LogGroup(this, 'FlowLogs', {
              retention: props.logRetention,
              removalPolicy: RemovalPolicy.DESTROY,
            }),
          ),
        },
      },
    });
    // AZ names map to different physical zones in each account; an AZ id names the same zone everywhere.
    if (zones.length > 0 && zones.every((zone) => AZ_ID.test(zone))) {
      for (const subnet of [
        ...this.vpc.publicSubnets,
        ...this.vpc.privateSubnets,
        ...this.vpc.isolatedSubnets,
      ]) {
        const cfn = subnet.node.defaultChild as CfnSubnet;
        cfn.addPropertyDeletionOverride('AvailabilityZone');
        cfn.addPropertyOverride('AvailabilityZoneId', subnet.availabilityZone);
      }
    }
    this.functionSubnets = { subnetType };
    this.functionSecurityGroup = new SecurityGroup(this, 'FunctionSecurityGroup', {
      vpc: this.vpc,
      description: 'Stream function: egress to the VPC endpoints, the cache and (with NAT) the internet',
      allowAllOutbound: true,
    });
    this.vpc.addGatewayEndpoint('DynamoDb', {
      service: GatewayVpcEndpointAwsService.DYNAMODB,
      subnets: [this.functionSubnets],
    });
    // Attachments: S3's gateway endpoint is free too, and keeps the files' traffic off the internet.
    this.vpc.addGatewayEndpoint('S3', {
      service: GatewayVpcEndpointAwsService.S3,
      subnets: [this.functionSubnets],
    });
    // The DynamoDB gateway endpoint is free; the interface endpoints are what the NAT gateway replaces.
    if (!props.natGateway) this.addInterfaceEndpoints(props.logsEndpoint ?? false);
  }

  private addInterfaceEndpoints(logs: boolean): void {
    const endpointSecurityGroup = new SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: this.vpc,
      description: 'Interface endpoints: HTTPS from the stream function only',
      allowAllOutbound: false,
    });
    endpointSecurityGroup.addIngressRule(
      Peer.securityGroupId(this.functionSecurityGroup.securityGroupId),
      Port.tcp(443),
      'HTTPS from the stream function',
    );
    const services = {
      Sqs: InterfaceVpcEndpointAwsService.SQS,
      BedrockRuntime: InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME,
      BedrockAgentRuntime: InterfaceVpcEndpointAwsService.BEDROCK_AGENT_RUNTIME,
      ...(logs ? { Logs: InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS } : {}),
    };
    for (const [name, service] of Object.entries(services)) {
      this.vpc.addInterfaceEndpoint(name, {
        service,
        subnets: this.functionSubnets,
        securityGroups: [endpointSecurityGroup],
        privateDnsEnabled: true,
        open: false,
      });
    }
  }
}
