"""Problem statements for training ``report_issue``: "the road hasn't been gritted".

People report a street problem as a plain statement, not with a request word, so the catalog's
templates ("there's a {issue}") and listed values ("pothole") are not enough. This module
composes statements from a small grammar: a public thing and what is wrong with it (with
singular/plural agreement and contractions), "there's ... all over the ...", "someone's dumped
...", "we've got no ...". Each comes with its slot span: the statement, with a place said
after it ("by the bins") but not the time ("again", "today"), as the test set's convention asks
(the value is trimmed to five words later, by :mod:`voicehello.intents.nlu.values`).

Used for training only; nothing here is matched against what people say.
"""

from __future__ import annotations

import random

SINGULAR = (
    "lift", "heating", "gate", "water", "recycling", "street lamp", "street light", "drain", "road",
    "bus shelter", "postbox", "internet", "wifi", "electricity", "gas", "footpath", "bridge",
    "car park", "power", "phone signal", "water pressure", "fence", "playground", "bollard",
    "pavement", "manhole cover", "bin", "hot water", "entry phone",
    "lamp post", "bench", "cycle path", "bus stop", "zebra crossing", "underpass", "stairwell light",
    "garden wall", "park gate", "alley", "stream", "roof", "gutter", "shared drive", "communal door",
    "buzzer", "recycling bin", "food waste bin", "broadband", "phone line", "tv signal", "hedge",
)  # fmt: skip
PLURAL = (
    "bins", "drains", "traffic lights", "street lights", "phone lines", "railings", "paving stones",
    "recycling bins", "lights in the stairwell", "swings", "gutters", "bollards", "lifts",
    "pipes", "roads", "bin bags", "wheelie bins", "drains on the corner", "lamp posts",
)  # fmt: skip
OWNERS = ("the", "the", "the", "our", "my", "the local", "the big", "the new", "the old", "the communal")

PREDICATES = (
    "{is} broken", "{isnt} working", "{is} down", "{has} gone off", "{has} been vandalised",
    "keep{s} flickering", "{hasnt} been emptied", "{hasnt} been collected", "{is} blocked",
    "{is} leaking", "{has} been left open", "{is} flooded", "{has} been cut off", "smell{s} funny",
    "{is} out", "{wasnt} collected", "{wasnt} emptied", "{is} closed", "{has} collapsed", "{is} icy",
    "{is} really slippery", "{hasnt} been gritted", "{is} missing", "keep{s} going off",
    "{has} been smashed", "{is} really low", "{has} been knocked down", "{has} come down",
    "{is} overflowing", "{hasnt} been fixed", "still {isnt} fixed", "{has} gone out",
    "{is} making a horrible noise", "{is} off again", "{has} stopped working", "{is} on the blink",
    "{is} playing up", "{has} packed in", "{is} cracked", "{is} jammed", "{is} stuck open",
    "{is} stuck shut", "{has} been stolen", "{has} been damaged", "{has} fallen over",
    "{has} blown over", "{is} hanging off", "{is} dripping", "{has} burst", "{is} frozen",
    "{is} covered in graffiti", "{is} full of rubbish", "{is} full of water", "{hasnt} been cleared",
    "{hasnt} been repaired", "{hasnt} been picked up", "{hasnt} been swept", "{wasnt} picked up",
    "{is} out of order", "{is} not working", "{is} dead", "{has} been left on all night",
    "{is} on all day", "still {hasnt} been fixed", "{is} sparking", "{is} wobbly", "{is} unsafe",
    "{has} a hole in it", "{is} falling apart", "{has} been ripped out", "{is} rotting",
    "{has} died", "{has} been down all morning", "{is} dangerous", "{is} a mess", "{is} leaning",
    "{has} been knocked over", "{has} sunk", "{is} buzzing", "{is} too dark to see",
)  # fmt: skip
AGREEMENT = {
    "{is}": ("is", "are"),
    "{isnt}": ("isn't", "aren't"),
    "{has}": ("has", "have"),
    "{hasnt}": ("hasn't", "haven't"),
    "{wasnt}": ("wasn't", "weren't"),
    "{s}": ("s", ""),
}

STUFF = (
    "glass", "broken glass", "oil", "rubbish", "litter", "mud", "paint", "water", "sand", "leaves",
    "diesel", "dog mess", "rubble", "feathers", "nails", "gravel", "bin bags", "sewage",
)  # fmt: skip
SURFACES = (
    "pavement",
    "road",
    "path",
    "street",
    "car park",
    "playground",
    "pavement",
    "footpath",
    "drive",
    "steps",
)
SCENES = (
    "a dog howling all night", "a car alarm going off", "a fox in the bins", "a van blocking the road",
    "a tree down across the path", "a man going door to door", "a cold caller going round",
    "a leak coming up through the road", "a horse loose on the lane", "smoke coming from the flats",
    "a lorry stuck under the bridge", "a car on the pavement", "a hole in the road",
    "a crack in the wall", "a gas leak", "water pouring down the road", "kids climbing on the roof",
    "a wasps nest by the gate", "a nest of rats", "a family of rats",
    "a pothole the size of a bath", "a dead fox on the road", "a stray dog wandering about",
    "a mattress dumped in the lane", "a burst pipe", "a fire in the bin", "a car with its lights on",
    "a suspicious van parked up", "someone trying car doors", "a bag left at the bus stop",
    "a loose paving slab", "ice on the steps", "black ice on the hill", "a flood at the bottom",
    "a fly problem", "a parking problem", "a damp problem", "a litter problem",
    "an alarm ringing", "a power cut", "a funny smell", "a strange smell", "a huge puddle",
    "a branch hanging off", "a cat stuck up a tree", "loud music every night", "people fly tipping",
)  # fmt: skip
UTILITIES = (
    "water", "power", "electricity", "gas", "heating", "hot water", "phone signal", "internet",
    "wifi", "street lighting", "signal", "broadband", "light in the stairwell",
)  # fmt: skip
DOERS = ("someone's", "somebody's", "someone has", "somebody has", "some kids have", "someone")
DEEDS = (
    "dumped a mattress", "smashed the bus shelter", "stolen the bench",
    "spray painted the wall", "knocked the bollard over", "blocked the drive", "set fire to the bin",
    "left the gate open", "dumped rubbish", "broken the swing", "damaged the fence",
    "parked across the drive", "nicked the plant pots", "pulled up the flowers", "smashed a window",
    "tipped over the bins", "left bin bags everywhere", "broken into the shed", "dumped a sofa",
    "dug up the verge", "taken the sign", "left a fridge", "scratched the cars",
)  # fmt: skip
VEHICLES = ("a lorry", "a van", "a car", "a bus", "a bin lorry", "a delivery van", "a tractor")
HITS = (
    "hit the lamp post", "knocked the fence over", "clipped the wall",
    "taken out the railings", "hit the bus shelter", "knocked the sign over", "damaged the gate",
)  # fmt: skip
PLACES = (
    "on the corner", "outside number six", "outside number nine", "outside number twelve",
    "by the school", "near the shops", "on mill lane", "on church road", "on the high street",
    "at the junction", "in the alley", "on our street", "by the bins", "in the park",
    "at the end of the road", "by the post office", "behind the flats", "on the main road",
    "near the bus stop", "by the river", "at the top of the hill", "down the lane",
)  # fmt: skip
WHENS = (
    "again", "today", "this morning", "this week", "since last night", "since yesterday",
    "for two days", "all week", "right now", "at the moment", "still",
)  # fmt: skip
HEADS_UP = (
    "heads up", "just a heads up", "fyi", "just so you know", "just letting you know", "warning",
    "be careful", "careful", "beware", "watch out", "um", "so", "oh no", "ugh", "just saying",
    "just to let everyone know", "attention everyone", "for anyone who hasn't noticed",
    "i think", "looks like", "apparently", "hi all", "hey everyone", "morning all",
)  # fmt: skip


def _subject(rng: random.Random) -> tuple[str, bool]:
    """("the bins", plural?)"""
    plural = rng.random() < 0.3
    noun = rng.choice(PLURAL if plural else SINGULAR)
    owner = rng.choice(OWNERS)
    return f"{owner} {noun}", plural


def _predicate(subject: str, plural: bool, rng: random.Random) -> str:
    """Subject and predicate, agreeing ("the bins haven't been emptied", "the gate's broken")."""
    predicate = rng.choice(PREDICATES)
    for mark, (one, many) in AGREEMENT.items():
        predicate = predicate.replace(mark, many if plural else one)
    verb, _, rest = predicate.partition(" ")
    if not plural and verb in ("is", "has") and rest and rng.random() < 0.45:
        return f"{subject}'s {rest}"
    return f"{subject} {predicate}"


def statement(slot: str, rng: random.Random) -> tuple[list[str], list[str]]:
    """One problem statement as words and BIO tags of ``slot``."""
    kind = rng.random()
    before: list[str] = []
    if kind < 0.45:
        subject, plural = _subject(rng)
        issue = _predicate(subject, plural, rng)
    elif kind < 0.6:
        before = rng.choice(("there's", "there is", "there's", "there's been")).split()
        issue = f"{rng.choice(STUFF)} all over the {rng.choice(SURFACES)}"
    elif kind < 0.78:
        before = rng.choice(("there's", "there is", "there's", "we've got", "we have", "there are")).split()
        issue = rng.choice(SCENES)
    elif kind < 0.86:
        before = rng.choice(("we've got", "we have", "there's", "we've had")).split()
        issue = f"no {rng.choice(UTILITIES)}"
    elif kind < 0.95:
        issue = f"{rng.choice(DOERS)} {rng.choice(DEEDS)}"
    else:
        vehicle = rng.choice(VEHICLES)
        joined = f"{vehicle}'s" if rng.random() < 0.5 else f"{vehicle} has"
        issue = f"{joined} {rng.choice(HITS)}"
    words = issue.split()
    if rng.random() < 0.3:
        words += rng.choice(PLACES).split()
    tags = [f"B-{slot}"] + [f"I-{slot}"] * (len(words) - 1)
    words, tags = before + words, ["O"] * len(before) + tags
    if rng.random() < 0.3:
        when = rng.choice(WHENS).split()
        words, tags = words + when, tags + ["O"] * len(when)
    if rng.random() < 0.35:
        opener = rng.choice(HEADS_UP).split()
        words, tags = opener + words, ["O"] * len(opener) + tags
    return words, tags


HOUSEHOLD = (
    "kettle", "toaster", "oven", "dishwasher", "washing machine", "tumble dryer", "hoover", "telly",
    "remote", "fridge", "freezer", "shower", "toilet", "bath", "printer", "laptop", "sink", "tap",
    "microwave", "hob", "iron", "hairdryer", "slow cooker", "timer", "smoke alarm", "doorbell",
    "radio", "lamp", "bulb in the hall", "cat flap", "back door", "bedroom window", "hamster cage",
    "sofa", "car", "bike", "phone", "tablet", "game console", "clock", "blender", "mixer",
    "pram", "buggy", "cooker", "extractor fan", "dryer", "landing light",
)  # fmt: skip
OTHERS = (
    "new neighbors", "kids", "baby", "dog", "cat", "council", "school", "shop on the corner",
    "bakery", "weather", "garden", "queue at the post office", "football", "match", "film",
    "soup", "cake", "bread", "dinner", "pasta", "avocados", "tomatoes", "washing", "house",
    "train", "telly", "neighbors' kids", "baby monitor", "new sofa", "shopping", "party",
)  # fmt: skip
NEUTRAL = (
    "{is} ready", "{is} in the oven", "look{s} lovely", "seem{s} really nice", "{is} on the table",
    "smell{s} amazing", "{is} asleep", "{is} much better now", "{is} working again", "{is} back on",
    "{has} been fixed", "{has} been repainted", "{is} open again", "{was} fixed yesterday",
    "got fixed last week", "{is} really quiet today", "{has} started learning the piano",
    "{has} announced new opening hours", "{is} busy today", "{is} lovely this time of year",
    "{is} too hot", "{is} nearly done", "{is} on at eight", "{has} gone to bed", "{is} still cooling",
    "{is} in the garden", "{has} been emptied", "{was} collected this morning", "{is} sorted now",
    "{is} fine now", "{has} come back on", "{is} much quieter now", "{has} a new sign",
    "{is} getting busier", "{is} cheaper this week", "{is} due on monday", "{was} late again",
)  # fmt: skip
EVERYDAY_WHENS = ("yesterday", "last night", "this morning", "again", "today", "at the moment")


def everyday_statement(rng: random.Random) -> list[str]:
    """A statement that reports nothing to the street: a problem with something of the home
    ("the kettle's broken") or a plain remark ("the bins have been emptied")."""
    plural = rng.random() < 0.25
    if rng.random() < 0.5:
        subject = f"{rng.choice(('the', 'the', 'my', 'our'))} {rng.choice(HOUSEHOLD)}"
        plural = False
        predicate = rng.choice(PREDICATES if rng.random() < 0.7 else NEUTRAL)
    else:
        subject = f"{rng.choice(('the', 'the', 'our', 'my'))} {rng.choice(OTHERS)}"
        predicate = rng.choice(NEUTRAL)
    for mark, (one, many) in AGREEMENT.items():
        predicate = predicate.replace(mark, many if plural else one)
    verb, _, rest = predicate.partition(" ")
    text = f"{subject}'s {rest}" if verb in ("is", "has") and rng.random() < 0.4 else f"{subject} {predicate}"
    if rng.random() < 0.3:
        text += " " + rng.choice(EVERYDAY_WHENS)
    return text.split()
