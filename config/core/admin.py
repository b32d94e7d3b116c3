"""Mixins for admin pages that show rows services write: nothing is edited by hand there.

`ViewOnlyFields` makes every concrete field read-only (leaving out `exclude`) and takes away the
add form; `ViewOnly` also takes away deletion. Changes happen through actions that call the
owning service (which keeps its audit trail), never through the change form.
"""

from __future__ import annotations


class ViewOnlyFields:
    def get_readonly_fields(self, request, obj=None):
        hidden = set(getattr(self, "exclude", None) or ())
        return [f.name for f in self.model._meta.fields if f.name not in hidden]

    def has_add_permission(self, request, obj=None):
        return False


class ViewOnly(ViewOnlyFields):
    def has_delete_permission(self, request, obj=None):
        return False
