"""The guide in the chat: which of domain.yml's utter_guide_* replies answers a
resident's question, and with which values.

Two uses: a question ("开居住证明要带啥", "社区几点上班") gets the service's
entry, the office, or an honest "not in the guide" listing what it covers; a
request to have a service done ("帮我开个居住证明") gets the guide's materials
list before the ticket is opened. Both need the resident's community: without
it, and with several guides, the question is which community.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.guide.book import Guide, answer_fields, find, guide_for, load_guides, materials_text

# Asking what the guide covers (the menu button says 办事指南).
OVERVIEW_WORDS = (
    "办事指南",
    "能办哪些",
    "能办什么",
    "能办啥",
    "都能办",
    "办哪些业务",
    "办什么业务",
)


@dataclass(frozen=True)
class Reply:
    """One message: a domain.yml response and the values of its template."""

    response: str
    values: dict[str, str] = field(default_factory=dict)


def answer(
    text: str,
    community: str | None,
    category: str | None = None,
    guides: dict[str, Guide] | None = None,
) -> list[Reply]:
    """The replies to a "how do I ..." question asked by a resident of `community`."""
    guides = guides if guides is not None else load_guides()
    if not guides:
        return [Reply("utter_guide_missing")]
    guide = guide_for(community, guides)
    if guide is None:
        communities = "、".join(sorted(guides))
        if community:  # known, but its office has not written a guide
            return [
                Reply(
                    "utter_guide_not_for_community",
                    {"community": community, "communities": communities},
                )
            ]
        return [Reply("utter_guide_which_community", {"communities": communities})]
    match = find(guide, text, category)
    if match is None:
        office = guide.office
        # the menu's 办事指南 and "社区能办啥" ask for the list; anything else
        # is honestly not in the guide
        overview = any(word in text for word in OVERVIEW_WORDS)
        return [
            Reply(
                "utter_guide_overview" if overview else "utter_guide_not_found",
                {
                    "community": guide.community,
                    "service_names": "、".join(s.name for s in guide.services),
                    "office_name": office.name,
                    "office_phone": office.phone or "—",
                    "office_hours": office.hours,
                },
            )
        ]
    values = answer_fields(match)
    if match.service is None:
        return [Reply("utter_guide_office", values)]
    replies = [Reply("utter_guide_service", values)]
    if match.service.notes:
        replies.append(Reply("utter_guide_notes", {"notes": match.service.notes}))
    return replies


def request_offer(
    category: str, community: str | None, guides: dict[str, Guide] | None = None
) -> Reply | None:
    """The guide's materials for a service the resident asks to have done, or None
    (no guide for the community, or no entry for the service)."""
    guides = guides if guides is not None else load_guides()
    guide = guide_for(community, guides)
    service = guide.for_category(category) if guide is not None else None
    if service is None:
        return None
    return Reply(
        "utter_guide_materials",
        {
            "service_name": service.name,
            "materials": materials_text(service),
            "where": service.where,
        },
    )
