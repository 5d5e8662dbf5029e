"""Storage: repositories over the single DynamoDB table and the data bucket."""
