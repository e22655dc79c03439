import type { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, Billing, ProjectionType, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { ACTIVITY_INDEX, TABLE_KEYS, TTL_ATTRIBUTE } from '../functions/contracts/table.ts';

export interface DataProps {
  deletionProtection: boolean;
  removalPolicy: RemovalPolicy;
}

/**
 * The single table (profiles, sessions, messages, usage), keyed as `functions/contracts/table.ts` says,
 * with the sessions-by-activity index the conversation list queries (no scan anywhere).
 */
export class Data extends Construct {
  readonly table: TableV2;

  constructor(scope: Construct, id: string, props: DataProps) {
    super(scope, id);
    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: TABLE_KEYS.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE_KEYS.sortKey, type: AttributeType.STRING },
      globalSecondaryIndexes: [
        {
          indexName: ACTIVITY_INDEX.name,
          partitionKey: { name: ACTIVITY_INDEX.partitionKey, type: AttributeType.STRING },
          sortKey: { name: ACTIVITY_INDEX.sortKey, type: AttributeType.STRING },
          projectionType: ProjectionType.ALL,
        },
      ],
      billing: Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TTL_ATTRIBUTE,
      deletionProtection: props.deletionProtection,
      removalPolicy: props.removalPolicy,
    });
  }

  /** The ARN of the sessions-by-activity index (IAM grants a Query on an index by this ARN, not the table's). */
  get activityIndexArn(): string {
    return `${this.table.tableArn}/index/${ACTIVITY_INDEX.name}`;
  }
}
