"""Identity and least-privilege authorization: who may do what on which resource.

Principals (users, services, agents) are bound to roles; roles hold permissions, each an
(action, resource pattern) pair with effect allow or deny.  ``authorize`` denies by default,
lets any applying deny win, ignores expired bindings and says why; ``explain`` lists every
rule it considered and, for a denial, what grant would change it.  Pattern semantics are in
:mod:`tsuba.core.identity.patterns`.

Why a small engine of our own rather than pycasbin: casbin's matchers (``keyMatch*``,
``globMatch``) do not give the exact segment semantics above (``*`` never crossing ``/``),
it has no notion of a binding that expires at an instant, its enforcer answers yes/no
without the per-rule account ``explain`` needs, and cross-process invalidation needs a
separate watcher service.  The decision here is ~150 lines of pure code over a compiled
snapshot, invalidated by one version counter stored with the policy itself.
"""

from tsuba.core.identity.authorizer import Authorizer
from tsuba.core.identity.events import decision_event
from tsuba.core.identity.expiry import parse_duration, parse_instant
from tsuba.core.identity.patterns import (
    ResourcePattern,
    action_matches,
    compile_pattern,
    validate_action,
    validate_resource,
)
from tsuba.core.identity.policy import (
    BindingView,
    Consideration,
    Decision,
    Effect,
    Explanation,
    PolicySnapshot,
    Rule,
)
from tsuba.core.identity.records import (
    BindingInfo,
    PermissionInfo,
    PrincipalInfo,
    PrincipalKind,
    RoleInfo,
)
from tsuba.core.identity.service import Emit, IdentityService

__all__ = [
    "Authorizer",
    "BindingInfo",
    "BindingView",
    "Consideration",
    "Decision",
    "Effect",
    "Emit",
    "Explanation",
    "IdentityService",
    "PermissionInfo",
    "PolicySnapshot",
    "PrincipalInfo",
    "PrincipalKind",
    "ResourcePattern",
    "RoleInfo",
    "Rule",
    "action_matches",
    "compile_pattern",
    "decision_event",
    "parse_duration",
    "parse_instant",
    "validate_action",
    "validate_resource",
]
