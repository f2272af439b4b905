"""The running gateway: HTTP service, store, delivery engine, pollers, routing and deadlines."""
