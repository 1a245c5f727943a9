from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import create_engine, text

from actions.report import (
    ActionAskAddress,
    ActionAttachPhoto,
    ActionStartReport,
    ActionSubmitReport,
    ValidateReportForm,
)
from bot.taxonomy import RESIDENTS_COUNCIL
from tests.actions.conftest import DOMAIN, make_tracker, responses, slot_events
from tests.helpers import taxonomy_with


def run(action, tracker):
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, DOMAIN)
    return dispatcher, events


def test_start_report_keeps_the_message_and_asks_for_nothing_it_has(demo_database):
    tracker = make_tracker("和平新村3号楼2单元501 暖气不热好几天了", intent="report_heating")
    dispatcher, events = run(ActionStartReport(), tracker)
    slots = slot_events(events)
    assert responses(dispatcher) == ["utter_ack_category"]
    assert dispatcher.messages[0]["category_label"] == "供暖供气"
    assert slots["category"] == "HEATING"
    assert slots["description"] == "和平新村3号楼2单元501 暖气不热好几天了"
    assert slots["address"] == "和平新村社区3号楼2单元501室"
    assert slots["located"]["grid"] == "HPXC-01"


def test_a_bare_category_leaves_the_description_to_ask(demo_database):
    _, events = run(ActionStartReport(), make_tracker("噪音", intent="report_noise"))
    assert "description" not in slot_events(events) or slot_events(events)["description"] is None


def test_services_get_their_checklist_and_disputes_the_mediation_note(demo_database):
    dispatcher, _ = run(
        ActionStartReport(), make_tracker("开个居住证明", intent="request_certificate")
    )
    assert "utter_checklist_CERTIFICATE" in responses(dispatcher)
    dispatcher, _ = run(
        ActionStartReport(), make_tracker("俺和楼上为漏水吵起来了", intent="dispute_neighbour")
    )
    assert "utter_mediation_info" in responses(dispatcher)


def test_the_note_follows_who_handles_the_matter_in_taxonomy_yml(demo_database, monkeypatch):
    from actions import report

    taxonomy = taxonomy_with("NEIGHBOUR_DISPUTE", handled_by=RESIDENTS_COUNCIL)
    monkeypatch.setattr(report, "get_taxonomy", lambda: taxonomy)
    dispatcher, _ = run(
        ActionStartReport(), make_tracker("俺和楼上为漏水吵起来了", intent="dispute_neighbour")
    )
    assert "utter_proposal_info" in responses(dispatcher)
    assert "utter_mediation_info" not in responses(dispatcher)


def test_ask_address_asks_known_residents_only_to_confirm(demo_database):
    dispatcher, _ = run(ActionAskAddress(), make_tracker(slots={"known_address": "裕园社区3号楼"}))
    assert responses(dispatcher) == ["utter_ask_address_known"]
    dispatcher, _ = run(ActionAskAddress(), make_tracker())
    assert responses(dispatcher) == ["utter_ask_address"]
    dispatcher, _ = run(ActionAskAddress(), make_tracker(slots={"address_attempts": 1}))
    assert responses(dispatcher) == ["utter_address_not_understood"]


def extract(tracker):
    """Run the form's validation as Rasa does: extraction, then validation."""
    import asyncio

    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateReportForm().run(dispatcher, tracker, DOMAIN))
    return dispatcher, slot_events(events)


def test_extract_address_parses_what_residents_type(demo_database):
    tracker = make_tracker(
        "和平新村小区十二号楼东单元301室",
        intent="inform_address",
        slots={"requested_slot": "address"},
    )
    _, slots = extract(tracker)
    assert slots["address"] == "和平新村社区12号楼东单元301室"
    assert slots["located"]["grid"] == "HPXC-02"


def test_extract_address_takes_a_shared_location(demo_database):
    tracker = make_tracker(
        "/share_location",
        intent="share_location",
        slots={"requested_slot": "address"},
        metadata={
            "wechat": {"location": {"latitude": 36.6610, "longitude": 117.0285, "label": "x"}}
        },
    )
    _, slots = extract(tracker)
    assert slots["located"]["community"] == "和平新村社区"


def test_extract_address_yes_and_no_to_the_known_address(demo_database):
    known = {"requested_slot": "address", "known_address": "裕园社区3号楼"}
    _, slots = extract(make_tracker("是", intent="affirm", slots=known))
    assert slots["address"] == "裕园社区3号楼"
    _, slots = extract(make_tracker("不是", intent="deny", slots=known))
    assert slots["address"] is None and slots["known_address"] is None


def test_an_address_answered_while_the_database_is_down_is_told_busy(demo_database, monkeypatch):
    # Without a word the resident's "是" to "还是…吗？" would get the same question again.
    from bot import frontdesk

    def down(*args, **kwargs):
        raise frontdesk.StoreUnavailable("connection refused")

    monkeypatch.setattr(frontdesk, "locate_text", down)
    known = {"requested_slot": "address", "known_address": "裕园社区3号楼", "address_attempts": 1}
    dispatcher, slots = extract(make_tracker("是", intent="affirm", slots=known))
    assert responses(dispatcher) == ["utter_busy"]
    assert slots["address"] is None and "address_attempts" not in slots


def test_extract_address_gives_up_after_the_third_miss(demo_database):
    slots = {"requested_slot": "address"}
    for attempt in (1, 2):
        _, result = extract(make_tracker("说不清", intent="out_of_scope", slots=slots))
        assert result["address_attempts"] == attempt and result["address"] is None
        slots["address_attempts"] = attempt
    dispatcher, result = extract(make_tracker("说不清", intent="out_of_scope", slots=slots))
    assert responses(dispatcher) == ["utter_address_handover"]
    assert result["address"] == "地址待社区核实"


def test_extract_address_ignores_interruptions_and_other_questions(demo_database):
    assert (
        extract(
            make_tracker(
                "你是机器人吗", intent="bot_challenge", slots={"requested_slot": "address"}
            )
        )[1]
        == {}
    )
    assert (
        extract(
            make_tracker(
                "和平新村3号楼", intent="inform_address", slots={"requested_slot": "description"}
            )
        )[1]
        == {}
    )


def confirmed_slots(**extra):
    slots = {
        "category": "HEATING",
        "category_label": "供暖供气",
        "description": "暖气不热",
        "address": "和平新村社区3号楼2单元501",
        "located": {
            "community": "和平新村社区",
            "building": 3,
            "unit": "2",
            "room": "501",
            "grid": "HPXC-01",
            "level": "grid",
        },
        "report_confirmed": True,
    }
    slots.update(extra)
    return slots


def tickets(url):
    engine = create_engine(url, future=True)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT number, channel, message_id, photos FROM tickets")
        ).all()
    engine.dispose()
    return rows


def test_submit_opens_one_ticket_per_confirming_message(demo_database):
    tracker = make_tracker(
        "是", intent="affirm", slots=confirmed_slots(photos=["http://pic/1"]), message_id="MSG-1"
    )
    dispatcher, events = run(ActionSubmitReport(), tracker)
    assert responses(dispatcher) == ["utter_ticket_opened_grid"]
    message = dispatcher.messages[0]
    assert message["worker_name"] == "王芳" and message["grid_name"]
    # the action retried with the same message: same ticket, not a second one
    dispatcher_again, _ = run(ActionSubmitReport(), tracker)
    assert dispatcher_again.messages[0]["ticket_number"] == message["ticket_number"]
    [row] = tickets(demo_database)
    assert row.channel == "wechat" and row.message_id == "MSG-1"
    assert slot_events(events)["category"] is None  # the report is done


def test_submit_without_a_yes_opens_nothing(demo_database):
    dispatcher, _ = run(
        ActionSubmitReport(),
        make_tracker("不是", intent="deny", slots=confirmed_slots(report_confirmed=False)),
    )
    assert responses(dispatcher) == ["utter_report_discarded"]
    assert tickets(demo_database) == []


def test_database_down_asks_to_try_again_and_keeps_the_report(demo_database, monkeypatch):
    from bot import frontdesk

    def down(**kwargs):
        raise frontdesk.StoreUnavailable("database is locked")

    monkeypatch.setattr(frontdesk, "submit_report", down)
    dispatcher, events = run(
        ActionSubmitReport(), make_tracker("是", intent="affirm", slots=confirmed_slots())
    )
    assert responses(dispatcher) == ["utter_ticket_failed"]
    assert slot_events(events) == {
        "pending_question": {
            "kind": "retry_submit",
            "subject": None,
            "label": None,
            "times_asked": 1,
        }
    }


@pytest.fixture
async def wechat_photos(demo_database, fake_wechat_api, tmp_path, monkeypatch):
    """The action server's WeChat API is the fake; photos go to a temporary folder."""
    from bot.settings import get_settings
    from bot.tickets import photos
    from tests.fakes import APP_SECRET, APPID

    monkeypatch.setenv("WECHAT_APPID", APPID)
    monkeypatch.setenv("WECHAT_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("WECHAT_API_BASE", fake_wechat_api.url)
    monkeypatch.setenv("PHOTO_DIR", str(tmp_path / "photos"))
    monkeypatch.setenv("PHOTO_MAX_BYTES", "2000")
    get_settings.cache_clear()
    await photos.reset_wechat_client()
    yield fake_wechat_api
    await photos.reset_wechat_client()


def photo_tracker(media_id, slots=None):
    return make_tracker(
        "/share_photo",
        intent="share_photo",
        slots=slots or {},
        metadata={"wechat": {"pic_url": "http://cdn/x", "media_id": media_id}},
    )


async def run_async(action, tracker):
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, DOMAIN)
    return dispatcher, events


async def test_a_photo_is_downloaded_and_attached_to_the_report_in_progress(
    wechat_photos, demo_database
):
    from tests.fakes import JPEG_HEAD, PNG_1PX

    wechat_photos.media.update({"M1": ("image/png", PNG_1PX), "M2": ("image/jpeg", JPEG_HEAD)})
    _, events = await run_async(ActionAttachPhoto(), photo_tracker("M1", {"category": "HEATING"}))
    [first] = slot_events(events)["photos"]
    dispatcher, events = await run_async(
        ActionAttachPhoto(), photo_tracker("M2", {"category": "HEATING", "photos": [first]})
    )
    assert responses(dispatcher) == ["utter_photo_attached"]
    kept = slot_events(events)["photos"]
    assert [p["content_type"] for p in kept] == ["image/png", "image/jpeg"]
    assert wechat_photos.media_requests == ["M1", "M2"]

    # the report is confirmed: the photos are on the ticket
    dispatcher, _ = run(
        ActionSubmitReport(),
        make_tracker("是", intent="affirm", slots=confirmed_slots(photos=kept)),
    )
    engine = create_engine(demo_database, future=True)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT content_type, source, actor, media_id FROM ticket_photos ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("image/png", "resident", "resident:oResident1", "M1"),
        ("image/jpeg", "resident", "resident:oResident1", "M2"),
    ]


async def test_a_photo_soon_after_a_report_goes_to_that_ticket(wechat_photos):
    from tests.fakes import PNG_1PX

    dispatcher, _ = run(
        ActionSubmitReport(), make_tracker("是", intent="affirm", slots=confirmed_slots())
    )
    number = dispatcher.messages[0]["ticket_number"]
    wechat_photos.media["M1"] = ("image/png", PNG_1PX)
    dispatcher, events = await run_async(ActionAttachPhoto(), photo_tracker("M1"))
    assert responses(dispatcher) == ["utter_photo_attached_ticket"]
    assert dispatcher.messages[0]["ticket_number"] == number
    assert "photos" not in slot_events(events)


@pytest.mark.parametrize(
    ("content", "reply"),
    [
        (("image/jpeg", b"\xff\xd8\xff" + b"\0" * 5000), "utter_photo_too_large"),
        (("image/jpeg", b"%PDF-1.4 this is no picture"), "utter_photo_not_image"),
        (("image/png", b"<svg onload=alert(1)>"), "utter_photo_not_image"),
        (None, "utter_photo_failed"),  # expired or unknown media id (40007)
    ],
)
async def test_bad_photos_are_refused_with_a_clear_reply(wechat_photos, tmp_path, content, reply):
    if content is not None:
        wechat_photos.media["BAD"] = content
    dispatcher, events = await run_async(
        ActionAttachPhoto(), photo_tracker("BAD", {"category": "HEATING"})
    )
    assert responses(dispatcher) == [reply]
    assert events == []
    assert not list((tmp_path / "photos").rglob("*.*"))  # nothing stored
    if reply == "utter_photo_too_large":
        assert dispatcher.messages[0]["max_size"] == "2KB"  # PHOTO_MAX_BYTES=2000 here


async def test_an_image_message_without_media_id_is_not_attached(wechat_photos):
    dispatcher, events = await run_async(
        ActionAttachPhoto(), photo_tracker(None, {"category": "HEATING"})
    )
    assert responses(dispatcher) == ["utter_photo_failed"] and events == []


@pytest.mark.parametrize("text", ["", "😡😡", "'; DROP TABLE tickets;--"])
def test_start_report_survives_odd_messages(demo_database, text):
    dispatcher, _ = run(ActionStartReport(), make_tracker(text, intent="report_sanitation"))
    assert "utter_ack_category" in responses(dispatcher)


def test_a_no_to_where_drops_the_report_instead_of_counting_as_an_address(demo_database):
    _, slots = extract(
        make_tracker("算了 不用了", intent="deny", slots={"requested_slot": "address"})
    )
    assert "address" not in slots and "address_attempts" not in slots


def test_a_report_confirmed_again_by_another_message_opens_one_ticket(demo_database):
    """Its first confirmation's turn was lost (the tracker not saved): the resident,
    asked again, confirms with a new message; the report is still one ticket."""
    started = [
        {"event": "user", "text": "暖气不热", "message_id": "MSG-START"},
        {"event": "action", "name": "action_start_report"},
    ]
    first = make_tracker(
        "是", intent="affirm", slots=confirmed_slots(), message_id="MSG-YES-1", events=started
    )
    again = make_tracker(
        "是的", intent="affirm", slots=confirmed_slots(), message_id="MSG-YES-2", events=started
    )
    numbers = [run(ActionSubmitReport(), t)[0].messages[0]["ticket_number"] for t in (first, again)]
    assert numbers[0] == numbers[1] and len(tickets(demo_database)) == 1


def test_a_report_carried_into_a_new_session_is_still_one_ticket(demo_database):
    """The conversation's session was closed at its length bound after the report
    began (bot.rasa_tracker_store): its start is not in the tracker any more, and a
    confirmation repeated after a lost answer still finds the ticket."""
    restarted = [
        {"event": "action", "name": "action_session_start"},
        {"event": "session_started", "timestamp": 1796608237.5},
        {"event": "action", "name": "action_listen"},
    ]
    numbers = [
        run(
            ActionSubmitReport(),
            make_tracker("是", "affirm", confirmed_slots(), message_id=m, events=restarted),
        )[0].messages[0]["ticket_number"]
        for m in ("MSG-YES-1", "MSG-YES-2")
    ]
    assert numbers[0] == numbers[1] and len(tickets(demo_database)) == 1


def test_a_resident_hears_that_neighbours_reported_it_too(demo_database):
    """Heating in one building within taxonomy.yml's incident window: the
    second and third reporters are told how many neighbours reported it."""
    told = []
    for n, sender in enumerate(("oNeighbourA", "oNeighbourB", "oNeighbourC")):
        tracker = make_tracker(
            "是", intent="affirm", slots=confirmed_slots(), sender_id=sender, message_id=f"N{n}"
        )
        dispatcher, _ = run(ActionSubmitReport(), tracker)
        told.append(responses(dispatcher))
        if n:
            assert dispatcher.messages[1]["neighbours"] == n
    assert told[0] == ["utter_ticket_opened_grid"]
    assert told[1] == told[2] == ["utter_ticket_opened_grid", "utter_neighbours_reported_too"]
