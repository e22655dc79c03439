import { Stack, Validations } from 'aws-cdk-lib';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/** How cdk-nag prints a resource in a finding id: tokens become `<AWS::Partition>`, `<Logical.Attr>`. */
export function nagResourceName(stack: Stack, value: string): string {
  const render = (part: unknown): string => {
    if (typeof part === 'string') return part;
    const node = part as Record<string, unknown>;
    if ('Ref' in node) return `<${String(node.Ref)}>`;
    if ('Fn::GetAtt' in node) return `<${(node['Fn::GetAtt'] as string[]).join('.')}>`;
    if ('Fn::Join' in node) {
      const [separator, parts] = node['Fn::Join'] as [string, unknown[]];
      return parts.map(render).join(separator);
    }
    return JSON.stringify(part);
  };
  return render(stack.resolve(value) as unknown);
}

/** Acknowledges cdk-nag's IAM5 finding for one wildcard resource on `role`'s default policy, with why. */
export function acknowledgeWildcardResource(role: IRole, resource: string, reason: string): void {
  const policy: IConstruct = role.node.tryFindChild('DefaultPolicy') ?? role;
  Validations.of(policy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagResourceName(Stack.of(role), resource)}]`,
    reason,
  });
}
