"""EN/DE cue phrases for purchase intent: features for the intent model and a rule baseline.

Each cue group is one regular expression per language over the lower-cased, tweet-normalised
text (see `nlp.intent.normalise`). The groups follow docs/intent_guidelines.md; they are
features, not labels: the trained model decides how much each one counts, and `rule_label`
is the lexicon-only baseline that bench/eval_intent.py compares the model with.
"""

from __future__ import annotations

import hashlib
import re

CUES: dict[str, dict[str, str]] = {
    "buy": {
        "en": r"\b(i|we|i'm|im|we're|i'll|we'll)\b[^.!?]{0,30}\b(buy|order|book|subscribe|pre-?order|purchas\w*|get(ting)?|upgrade|sign up)\b"
              r"|\b(gonna|going to|want to|wanna|need to|about to|plan(ning)? to|can't wait to|will) (buy|order|book|get|see|go see|purchase|subscribe)\b"
              r"|\bjust (ordered|booked|bought|subscribed|pre-?ordered)\b|\bis booked\b|\btrying to (book|order|buy|purchase|pay|check ?out)\b"
              r"|\bhow (do|can) i (buy|order|book|get|pre-?order)\b|\bcan i (buy|order|book|pre-?order)\b|\bwhen can (i|we) (buy|order|pre-?order)\b",
        "de": r"\b(ich|wir)\b[^.!?]{0,30}\b(kauf\w*|bestell\w*|buch(e|en)|hol(e|en)? (mir|uns)|abonnier\w*|reservier\w*)\b"
              r"|\b(gebucht|bestellt|abonniert)\b|\bwie kann ich\b[^.!?]{0,40}\b(buchen|kaufen|bestellen)\b"
              r"|\bversucht\b[^.!?]{0,40}\b(buchen|kaufen|bestellen)\b|\bsuche\b[^.!?]{0,30}\b(ticket|gutschein|karte|fahrkarte|coupon)\w*"
              r"|\bmuss ich mir\b[^.!?]{0,20}\bholen\b|\bmöchte\b[^.!?]{0,40}\b(kaufen|buchen|bestellen|upgraden)\b",
    },
    "consider": {
        "en": r"\bshould i\b|\bworth (it|buying|the money|getting)\b[^.!]{0,20}\?|\bor should\b|\bthinking (of|about) (buying|getting|going)\b"
              r"|\bwhich (one|is better|should)\b|\bany (recommendations|suggestions)\b|\banyone (used|tried|have)\b|\bhow much (is|does|would)\b"
              r"|\bnot sure (if|whether)\b|\bcan't decide\b|\b(vs\.?|versus)\b[^.!]{0,40}\?|\bdo (you|y'all|yall) recommend\b",
        "de": r"\bsoll(te)? ich\b|\blohnt (es )?sich\b[^.!]{0,40}\?|\boder lieber\b|\büberleg\w*\b|\bwas würdet ihr\b|\bwas haltet ihr\b"
              r"|\bkennt jemand\b|\bweiß jemand\b|\bhat jemand erfahrung|\berfahrungen mit\b|\bwie viel kostet\b|\bwas kostet\b|\btipps?\b[^.!]{0,30}\?"
              r"|\bkann man\b[^.!]{0,40}\b(nutzen|mitnehmen|fahren)\b[^.!]{0,10}\?",
    },
    "recommend": {
        "en": r"\b(highly |i |would |totally |definitely )?recommend(ed)? (it|this|them|going|the)\b|\bi recommend\b|\bhighly recommend\b"
              r"|\byou (should|need to|must|have to|gotta) (try|get|buy|see|watch|check|go|read|listen)\b|\bmust[- ](see|have|try|watch|read)\b"
              r"|\bcheck (it|them|this) out\b|\bgo (see|get|buy|watch)\b",
        "de": r"\b(kann ich|sehr zu|nur zu|wärmstens|weiter)\s*empfehl\w*|\bempfehle\b|\bempfehlenswert\b|\bprobier(t)? (mal|es)\b"
              r"|\bmüsst ihr\b|\bsolltet ihr\b|\blohnt sich\b(?![^.!]*\?)|\bunbedingt (anschauen|ansehen|probieren|hingehen)\b|\bleseempfehlung\b",
    },
    "complaint": {
        "en": r"\b(still|never|not|no|n't|cannot|can't|won't|doesn't|didn't|isn't|wasn't)\b[^.!?]{0,40}\b(work\w*|arriv\w*|deliver\w*|respon\w*|receiv\w*|help\w*|fix\w*|load\w*|show\w*)\b"
              r"|\b(delay(ed)?|late|broken|error|crash\w*|issue|problem|charged|overcharg\w*|rude|terrible|worst|awful|horrible|disappoint\w*|ridiculous|unacceptable|lost|missing|wrong|refus\w*|waste)\b"
              r"|\bwtf\b|\bfix (this|it|your)\b|\bwhy (is|are|do|does|did|can't|won't)\b",
        "de": r"\b(verspätung|verspätet|versp\.|ausfall|ausgefallen|fällt aus|kaputt|defekt|störung|chaos|voll|dreckig|teuer|überteuert|unfreundlich|ärgerlich|frech|katastroph\w*|zumutung|unverschämt|keine? (ahnung|info|antwort|ansage|wlan|klimaanlage))\b"
              r"|\bnicht\b[^.!?]{0,30}\b(pünktlich|funktioniert|geht|erreichbar|angezeigt|gekommen|erhalten)\b|\bschon wieder\b|\bmal wieder\b|\bwarum\b|\bwieso\b|\bdanke,? (db|bahn)\b",
    },
    "churn": {
        "en": r"\bcancel\w*\b|\b(switch\w*|moving|move) (to|from|over|back)\b|\bleav(e|ing) (you|\w+ for)\b|\bdone with\b|\bnever (again|using|buying|flying|ordering|shopping)\b"
              r"|\brefund\w*\b|\breturn(ing|ed)? (it|this|them|my|the)\b|\bunsubscrib\w*\b|\bclose my account\b|\blost (a|another) (customer|buyer)\b"
              r"|\bwon't be (back|using|buying|flying|ordering)\b|\bno longer (use|buy|fly)\w*\b|\bstopped (using|ordering|buying)\b|\bthinking of leaving\b|\bother carriers?\b|\banother airline\b",
        "de": r"\bkündig\w*\b|\bstornier\w*\b|\bnie (wieder|mehr)\b|\bnicht mehr mit\b|\bfahre (ich )?(jetzt|nur noch|lieber)\b|\bsteige\b[^.!?]{0,20}\bum\b|\bumgestiegen\b"
              r"|\b(flixbus|fernbus|blablacar|mitfahrgelegenheit|ryanair)\b|\bmit dem auto\b|\bzurückgeb\w*\b|\bkein bedarf mehr\b|\bmöchte ich\b[^.!?]{0,20}\bnicht\b|\bich bin raus\b|\bich bin draußen\b",
    },
    "promo": {
        "en": r"\b(available (now|for)|pre-?order (now|today)|buy one|get one free|sale|deal(s)?|discount|win|giveaway|register here|sign up (for|today)|tickets? (on sale|available)|order (now|today)|limited)\b",
        "de": r"\b(verkaufe|zu verkaufen|angebot|aktion|gewinnspiel|rabatt|jetzt (kaufen|buchen|bestellen|tickets)|kleinanzeigen|gutefrage\.net-tag|dpa|\(dpa\)|pressemeldung|ab \d+ ?€)\b",
    },
}
GROUPS = tuple(CUES)
# The rule baseline takes the first group that matches, in the guidelines' decision order.
RULE_ORDER = ("churn", "buy", "recommend", "consider", "complaint")

_COMPILED = {group: {lang: re.compile(p) for lang, p in by_lang.items()} for group, by_lang in CUES.items()}


def lexicon_digest() -> str:
    """Return a short hash of the cue lexicon (stored with the model; a change needs retraining)."""
    text = "\x1e".join(f"{g}:{lang}:{p}" for g, by_lang in CUES.items() for lang, p in sorted(by_lang.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def cue_counts(text: str, lang: str) -> list[int]:
    """Return the number of matches of each cue group (GROUPS order) in normalised `text`."""
    return [len(_COMPILED[g][lang].findall(text)) if lang in _COMPILED[g] else 0 for g in GROUPS]


def rule_label(text: str, lang: str) -> str:
    """Return the lexicon-only label: the first matching group in decision order, else "none"."""
    counts = dict(zip(GROUPS, cue_counts(text, lang)))
    for group in RULE_ORDER:
        if counts[group]:
            return group
    return "none"
