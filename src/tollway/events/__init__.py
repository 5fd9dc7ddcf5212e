"""Event export: what happened in the gateway, delivered at least once to the sinks the
operator configured (a rotating JSONL file, signed webhooks, a Redis stream, plugins).

    producers (observer hooks, admin routes, quarantine, budget and expiry tasks)
      -> service.Events.emit      one JSON line into the outbox (envelope.py)
      -> outbox.Outbox            memory-mapped segments in the data dir (segments.py)
      -> dispatch.Dispatcher      one per sink: cursor, retries, dead letters
      -> telemetry.sinks.Sink     file_sink.py, webhook.py, redis_stream.py, plugins
"""
