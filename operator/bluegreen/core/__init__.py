"""The pure core: plain data in, plain data out; no Kopf, no client, no threads, no I/O."""
