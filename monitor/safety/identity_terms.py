"""Mask words that name an identity group, so a word-level model cannot react to the group itself.

The lexical toxicity model (alt-profanity-check) learned from comments where "gay", "muslim" or "mentally ill"
co-occur with abuse, so it scores "I live with two gay people" as offensive. The combined default scorer
(``monitor.safety.combined``) asks the lexical model only about explicit abuse, on the text with every identity
term replaced by a neutral word: "You gay idiot" still scores as abuse (for "idiot"), "I am a gay man" no longer
does. Counterfactual probes do the same with their one known term (``monitor.safety.probes.mask_group_term``);
here the term is unknown, so a fixed list covers the groups we measure (the 21 of bench/safety_quality.py and the
~50 terms of the Jigsaw identity templates) in their singular, plural and adjective forms.

Limits (docs/safety.md): slurs are deliberately *not* masked (they are abuse, and the lexical model should see
them); a group named in a form not listed ("Mohammedans", a misspelling like "muzlims") is not masked, so the
lexical model may still react to it; masking only ever lowers the lexical score, and the embedding head scores
the unmasked text, so masking cannot make hateful text score lower than the head alone does.
"""

from __future__ import annotations

import re

MASK = "person"

# Words that name a group and are also used as adjectives ("gay people", "a Muslim woman", "autistic"). Each is a
# regex fragment; an optional plural "s" is written into the fragment where English has one ("muslims?").
_GROUP_WORDS = (
    # sexual orientation and gender identity
    r"gays?", r"lesbians?", r"bisexuals?", r"bi", r"homosexuals?", r"heterosexuals?", r"straight", r"queers?",
    r"trans", r"transgenders?", r"transsexuals?", r"non-?binary", r"lgbt(?:q(?:ia)?)?\+?", r"lgbtqia\+?",
    r"cis(?:gender)?", r"intersex",
    # gender
    r"women", r"woman", r"men", r"man", r"females?", r"males?", r"girls?", r"boys?", r"ladies", r"lady",
    # race, ethnicity, nationality
    r"black", r"blacks", r"white", r"whites", r"asians?", r"african(?:[ -]americans?)?", r"africans",
    r"hispanics?", r"latin[oa]s?", r"latinx", r"mexicans?", r"chinese", r"japanese", r"koreans?", r"indians?",
    r"native(?:[ -]americans?)?", r"indigenous", r"middle[ -]eastern(?:ers?)?", r"arabs?", r"arabic", r"americans?",
    r"europeans?", r"canadians?", r"people of colou?r", r"poc",
    # religion
    r"muslims?", r"islamic", r"jews?", r"jewish", r"christians?", r"catholics?", r"protestants?", r"hindus?",
    r"sikhs?", r"buddhists?", r"atheists?", r"taoists?",
    # disability and health
    r"disabled", r"disabilit(?:y|ies)", r"blind", r"deaf", r"mentally[ -](?:ill|disabled|handicapped)",
    r"mental illness(?:es)?", r"autistic", r"autism", r"autists?", r"wheelchair users?",
    # migration
    r"immigrants?", r"migrants?", r"refugees?", r"asylum seekers?", r"foreigners?",
    # age
    r"elderly", r"old", r"older", r"young", r"younger", r"teenagers?", r"teenage", r"millen+ial+s?", r"middle[ -]aged",
)
# A person noun after a group adjective is masked with it: "gay people" -> "person", not "person people".
_PERSON_NOUNS = (r"people", r"persons?", r"folks?", r"community", r"communities", r"individuals?", r"kids?",
                 r"guys?", r"men", r"man", r"women", r"woman", r"boys?", r"girls?", r"families", r"family")

_PATTERN = re.compile(
    r"(?<![\w'])(?:" + "|".join(_GROUP_WORDS) + r")(?:[ -](?:" + "|".join(_PERSON_NOUNS) + r"))?(?![\w'])",
    re.IGNORECASE,
)


def mask_identity_terms(text: str, replacement: str = MASK) -> str:
    """``text`` with every listed identity term (and a person noun right after it) replaced by ``replacement``."""
    return _PATTERN.sub(replacement, text)
