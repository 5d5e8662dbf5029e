"""Adapters: the implementations of the domain's ports on AWS services other than DynamoDB (SQS,
Step Functions, EventBridge, EventBridge Scheduler), on the node engine and S3, and on a webhook.

Repositories over the table (and the secret store) live in sluice.store; the composition root
(sluice.composition) builds both and hands them to the domain's services.
"""
