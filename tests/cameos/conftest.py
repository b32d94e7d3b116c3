import pytest

from cameos.models import Audience, Cameo, CameoStatus
from cameos.services import cameo_create


@pytest.fixture
def make_cameo(db):
    def make(
        owner, *, kind="object", status=CameoStatus.ACTIVE, audience=Audience.APPROVED, handle=None
    ):
        cameo = cameo_create(
            owner=owner, kind=kind, display_name=f"{kind} of {owner.username}", handle=handle
        )
        # Test setup only: put the cameo straight into the state under test.
        Cameo.objects.filter(pk=cameo.pk).update(status=status, audience=audience)
        cameo.refresh_from_db()
        return cameo

    return make
