"""Identity's domain, one module per aggregate family: `accounts` (and the bootstrap marker),
`keys` (and the key-hash index) and `members` (and the email index). Pure: no I/O, and the clock
comes in as `now`. A decision that spans families (a member's removal revokes its keys) is
composed by its handler from each family's decisions, in one save."""

from stratus_identity.domain import accounts, keys, members

MUTATES = (accounts.mutate, keys.mutate, members.mutate)

__all__ = ["MUTATES", "accounts", "keys", "members"]
