"""The floor of a DynamoDB-backed API function: FastAPI + Mangum + a boto3 client made at import
(the common pattern), one GetItem per request. Its import + first request is the least any
function that reads DynamoDB on its first request pays."""

import os

import boto3
from fastapi import FastAPI, HTTPException
from mangum import Mangum

dynamodb = boto3.client("dynamodb")
app = FastAPI()


@app.get("/item/{item_id}")
def get_item(item_id: str) -> dict:
    found = dynamodb.get_item(
        TableName=os.environ["TABLE_NAME"], Key={"PK": {"S": "ITEM"}, "SK": {"S": item_id}}
    ).get("Item")
    if found is None:
        raise HTTPException(status_code=404, detail="not found")
    return found


handler = Mangum(app, lifespan="off")
