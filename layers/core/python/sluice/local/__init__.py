"""The local stack: the whole system in one process on moto (`sluice dev`)."""
