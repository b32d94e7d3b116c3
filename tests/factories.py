from __future__ import annotations

from datetime import date

import factory

from accounts.models import User
from accounts.names import name_key
from accounts.tokens import token_issue

PASSWORD = "correct horse battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n:04d}")
    username_key = factory.LazyAttribute(lambda o: name_key(o.username))
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    birth_date = date(1995, 6, 15)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def token_for(user: User) -> str:
    return token_issue(user=user)
