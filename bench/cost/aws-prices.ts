/**
 * AWS list prices the cost model (`npm run cost`) uses: US East (N. Virginia), on demand, no free tier,
 * no Savings Plans, in US dollars. Read from the public pricing pages named beside each group (November
 * 2026); prices change, so check them before a decision and update this file, the only place they live.
 */
export const AWS_PRICES = {
  region: 'us-east-1',
  checked: '2026-11',

  /** https://aws.amazon.com/lambda/pricing/ (Arm price, first duration tier) */
  lambda: {
    requestsPerMillion: 0.2,
    armPerGbSecond: 0.0000133334,
    /** Response streaming: bytes beyond the first 6 MB of a response; a turn streams far less. */
    streamedPerGbBeyond6Mb: 0.008,
  },

  /**
   * https://aws.amazon.com/lambda/pricing/ (Lambda Managed Instances: the EC2 instance's on-demand price,
   * a management fee of 15 % of it, and the request charge; no duration charge) and
   * https://aws.amazon.com/ec2/pricing/on-demand/ (m7g.large, 2 vCPU, 8 GiB, Linux).
   * https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-scaling.html: three instances
   * by default, for Availability Zone resilience.
   */
  managedInstances: {
    instanceType: 'm7g.large',
    instancePerHour: 0.0816,
    instanceVcpus: 2,
    managementFeeRate: 0.15,
    requestsPerMillion: 0.2,
    minimumInstances: 3,
  },

  /** https://aws.amazon.com/sqs/pricing/ (FIFO queues; each 64 KB chunk of a payload is one request) */
  sqs: { fifoRequestsPerMillion: 0.5 },

  /** https://aws.amazon.com/dynamodb/pricing/on-demand/ */
  dynamodb: {
    writeRequestUnitsPerMillion: 0.625,
    readRequestUnitsPerMillion: 0.125,
    storagePerGbMonth: 0.25,
    pitrPerGbMonth: 0.2,
  },

  /** https://aws.amazon.com/elasticache/pricing/ (ElastiCache Serverless for Valkey) */
  valkeyServerless: {
    storagePerGbHour: 0.0837,
    /** Valkey bills at least 100 MB of data stored. */
    minimumStorageGb: 0.1,
    ecpusPerMillion: 0.00227,
  },

  /** https://aws.amazon.com/privatelink/pricing/ (interface endpoints, per endpoint per AZ) */
  interfaceEndpoint: { perAzHour: 0.01, perGbProcessed: 0.01 },

  /** https://aws.amazon.com/vpc/pricing/ (NAT gateway) */
  natGateway: { perHour: 0.045, perGbProcessed: 0.045 },

  /** https://aws.amazon.com/cloudwatch/pricing/ (standard logs; first 10,000 custom metrics) */
  cloudwatch: {
    logsIngestedPerGb: 0.5,
    logsStoredPerGbMonth: 0.03,
    customMetricPerMonth: 0.3,
    dashboardPerMonth: 3,
    alarmMetricPerMonth: 0.1,
  },

  /** https://aws.amazon.com/kms/pricing/ (customer managed key) */
  kms: { keyPerMonth: 1 },

  /** https://aws.amazon.com/ec2/pricing/on-demand/ (data transfer out to the internet, first 10 TB) */
  dataTransferOutPerGb: 0.09,

  /**
   * https://aws.amazon.com/bedrock/pricing/ (Anthropic Claude Haiku 4.5, on demand, per million tokens;
   * cache writes with the default 5-minute lifetime).
   */
  bedrockHaiku45: {
    inputPerMillion: 1,
    outputPerMillion: 5,
    cacheWritePerMillion: 1.25,
    cacheReadPerMillion: 0.1,
  },

  hoursPerMonth: 730,
  secondsPerMonth: 730 * 3600,
} as const;
