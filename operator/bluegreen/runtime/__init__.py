"""The running operator: handlers, watches, store, queue, reconcile, checks, leader, metrics."""
