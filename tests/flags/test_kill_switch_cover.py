"""One answer to "which kill switch covers this flag here", and a switch keeps covering every
flag it turned off until it is released, whatever happens to tags afterwards."""

from __future__ import annotations

import pytest

from flags.selectors import flag_list, kill_switch_cover, kill_switch_covering
from flags.services import (
    KillSwitchEngaged,
    flag_create,
    flag_state_set,
    flag_update,
    kill_switch_engage,
    kill_switch_release,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def calling(release_manager, production):
    flag = flag_create(actor=release_manager, key="calling", name="Calling", tags=["calling"])
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="launch"
    )
    return flag


def test_tag_switch__tag_removed_afterwards__still_covers_and_refuses_increases(
    oncall, developer, release_manager, calling, production
):
    switch = kill_switch_engage(
        actor=oncall, environment=production, scope="tag", tag=calling.tags.get(), reason="fraud"
    ).switch
    flag_update(actor=developer, flag=calling, tags=[], reason="retagging")
    assert not calling.tags.exists()
    assert kill_switch_covering(calling, production) == switch
    with pytest.raises(KillSwitchEngaged, match="the calling tag"):
        flag_state_set(
            actor=release_manager, flag=calling, environment=production, mode="full", reason="on"
        )
    kill_switch_release(actor=oncall, switch=switch, reason="fixed")
    assert kill_switch_covering(calling, production) is None
    state = flag_state_set(
        actor=release_manager, flag=calling, environment=production, mode="full", reason="on"
    )
    assert state.mode == "full"


def test_tag_switch__flag_tagged_after_engagement__covered_too(
    oncall, developer, release_manager, calling, production
):
    switch = kill_switch_engage(
        actor=oncall, environment=production, scope="tag", tag=calling.tags.get(), reason="fraud"
    ).switch
    later = flag_create(actor=release_manager, key="sms", name="SMS")
    assert kill_switch_covering(later, production) is None
    flag_update(actor=developer, flag=later, tags=["calling"], reason="it calls too")
    assert kill_switch_covering(later, production) == switch


def test_kill_switch_covering__several_engaged__earliest_named_by_every_form(
    oncall, calling, production, staging
):
    tag_switch = kill_switch_engage(
        actor=oncall, environment=production, scope="tag", tag=calling.tags.get(), reason="one"
    ).switch
    kill_switch_engage(
        actor=oncall, environment=production, scope="flag", flag=calling, reason="two"
    )
    kill_switch_engage(actor=oncall, environment=production, reason="three")
    cover = kill_switch_cover()
    listed = flag_list().get(key="calling")
    assert kill_switch_covering(calling, production) == tag_switch
    assert cover.covering(listed, production) == tag_switch
    assert [s.reason for s in cover.all_covering(listed, production)] == ["one", "two", "three"]
    assert cover.covering(listed, staging) is None
    assert cover.for_environment(production).reason == "three"
    assert cover.for_flag(listed, production).reason == "two"


def test_kill_switch_cover__a_page_of_flags__two_queries(
    oncall, calling, production, django_assert_num_queries
):
    kill_switch_engage(
        actor=oncall, environment=production, scope="tag", tag=calling.tags.get(), reason="one"
    )
    flags = list(flag_list())
    with django_assert_num_queries(2):  # the switches, the flags each covered
        cover = kill_switch_cover()
        assert [cover.covering(f, production) is not None for f in flags] == [True]
