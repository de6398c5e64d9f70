"""The reasons: one vocabulary of the CamelCase words programs read in the status's
conditions and in Events. Every module that writes or reads one names it from here."""

from __future__ import annotations

# The status's reason (the Progressing condition; the Degraded one while Degraded).
CONVERGED = "Converged"
ROLLING_OUT = "RollingOut"
ROLLOUT_FAILED = "RolloutFailed"
WAITING_FOR_ENDPOINTS = "WaitingForEndpoints"
CHECKING = "Checking"
CHECK_FAILED = "CheckFailed"
WAITING_FOR_PROMOTION = "WaitingForPromotion"
SWITCHING = "Switching"
SWITCHED = "Switched"  # also the Event of the switch write
ROLLED_BACK = "RolledBack"
CHILD_CONFLICT = "ChildConflict"
CHILD_REJECTED = "ChildRejected"
INVALID_SPEC = "InvalidSpec"
FORBIDDEN = "Forbidden"
# What the gateways say of the app's HTTPRoutes (core/routes.py).
ROUTE_REFUSED = "RouteRefused"
ROUTE_PENDING = "RoutePending"
GATEWAY_API_MISSING = "GatewayAPIMissing"

# The other conditions' reasons.
ACTIVE_COLOR_AVAILABLE = "ActiveColorAvailable"
ACTIVE_COLOR_UNAVAILABLE = "ActiveColorUnavailable"
AS_EXPECTED = "AsExpected"

# The Events of the writes, besides Switched.
CREATED = "Created"
DEPLOYING = "Deploying"
SCALED = "Scaled"
UPDATED = "Updated"
DELETED = "Deleted"
# The Warning Event posted with a switch whose scale-down delay is short.
SHORT_SCALE_DOWN_DELAY = "ShortScaleDownDelay"
# The Events of notifications (docs/notifications.md).
NOTIFIED = "Notified"
NOTIFICATION_FAILED = "NotificationFailed"
NOTIFICATION_UNCERTAIN = "NotificationUncertain"
