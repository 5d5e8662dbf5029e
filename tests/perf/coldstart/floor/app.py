"""The cold-start floor: the smallest FastAPI app wrapped by Mangum that an API function could be."""

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/ping")
def ping() -> dict:
    return {"ok": True}


handler = Mangum(app, lifespan="off")
