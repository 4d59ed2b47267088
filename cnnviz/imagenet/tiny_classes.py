"""Which ImageNet-1k output is which Tiny ImageNet class: 200 WordNet ids -> torchvision's class index.

torchvision's ImageNet weights name their 1000 outputs (``weights.meta["categories"]``: "tench", "goldfish",
...) but carry no WordNet ids, and cnnviz matches classes by WordNet id (agreement between models, the
true class of a validation image, Compare's per-class evaluation). Tiny ImageNet's 200 classes are a subset
of ImageNet-1k's, so their ids can be recovered from data on this machine, without inventing any:

* Tiny ImageNet's ``words.txt`` lists every WordNet id with its lemmas ("goldfish, Carassius auratus");
* a class's index is the one torchvision category that is one of its lemmas; three classes have two such
  categories ("projectile, missile": torchvision has both "projectile" and "missile") and take the one equal
  to their first lemma;
* check: ImageNet-1k's outputs are in WordNet-id order, so the indices must rise strictly with the ids. They
  do, and every match is the class's first lemma.

:data:`TINY_TO_IMAGENET` is that table, written once by :func:`derive_indices` (``python -m
cnnviz.imagenet.tiny_classes PATH/words.txt PATH/wnids.txt`` prints it) and checked against the real data by
``tests/test_imagenet.py`` where the dataset is present. The other 800 outputs get the id
``imagenet1k/<index>`` (:func:`class_ids`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence

PLACEHOLDER = "imagenet1k/{index}"  # the id of an ImageNet output whose WordNet id is not known here


def derive_indices(lemmas: Mapping[str, Sequence[str]], tiny_wnids: Iterable[str],
                   categories: Sequence[str]) -> dict[str, int]:
    """``{wnid: index}`` for the Tiny ImageNet classes (see the module docstring). Raises ValueError when a
    class has no category, several that are not its first lemma, or the indices do not rise with the ids."""
    out: dict[str, int] = {}
    for wnid in sorted(tiny_wnids):
        names = [s.strip() for s in lemmas[wnid]]
        hits = [i for i, c in enumerate(categories) if c in names]
        if len(hits) > 1:
            hits = [i for i in hits if categories[i] == names[0]]
        if len(hits) != 1:
            raise ValueError(f"{wnid} ({', '.join(names)}) matches {len(hits)} ImageNet categories")
        out[wnid] = hits[0]
    indices = list(out.values())
    if any(a >= b for a, b in zip(indices, indices[1:], strict=False)):
        raise ValueError("the matched indices do not rise with the WordNet ids: a name matched the wrong class")
    return out


def read_words(path) -> dict[str, list[str]]:
    """Tiny ImageNet's ``words.txt``: ``wnid<TAB>lemma, lemma, ...`` per line."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            wnid, _, words = line.rstrip("\n").partition("\t")
            out[wnid] = [w.strip() for w in words.split(",")]
    return out


def class_ids(num_classes: int = 1000) -> list[str]:
    """The id of every ImageNet-1k output in order: the WordNet id for Tiny ImageNet's 200 classes,
    ``imagenet1k/<index>`` for the others."""
    by_index = {i: w for w, i in TINY_TO_IMAGENET.items()}
    return [by_index.get(i, PLACEHOLDER.format(index=i)) for i in range(num_classes)]


TINY_TO_IMAGENET: dict[str, int] = {
    # written by derive_indices from Tiny ImageNet's words.txt/wnids.txt and torchvision's categories
    "n01443537": 1, "n01629819": 25, "n01641577": 30, "n01644900": 32, "n01698640": 50, "n01742172": 61,
    "n01768244": 69, "n01770393": 71, "n01774384": 75, "n01774750": 76, "n01784675": 79, "n01855672": 99,
    "n01882714": 105, "n01910747": 107, "n01917289": 109, "n01944390": 113, "n01945685": 114, "n01950731": 115,
    "n01983481": 122, "n01984695": 123, "n02002724": 128, "n02056570": 145, "n02058221": 146, "n02074367": 149,
    "n02085620": 151, "n02094433": 187, "n02099601": 207, "n02099712": 208, "n02106662": 235, "n02113799": 267,
    "n02123045": 281, "n02123394": 283, "n02124075": 285, "n02125311": 286, "n02129165": 291, "n02132136": 294,
    "n02165456": 301, "n02190166": 308, "n02206856": 309, "n02226429": 311, "n02231487": 313, "n02233338": 314,
    "n02236044": 315, "n02268443": 319, "n02279972": 323, "n02281406": 325, "n02321529": 329, "n02364673": 338,
    "n02395406": 341, "n02403003": 345, "n02410509": 347, "n02415577": 349, "n02423022": 353, "n02437312": 354,
    "n02480495": 365, "n02481823": 367, "n02486410": 372, "n02504458": 386, "n02509815": 387, "n02666196": 398,
    "n02669723": 400, "n02699494": 406, "n02730930": 411, "n02769748": 414, "n02788148": 421, "n02791270": 424,
    "n02793495": 425, "n02795169": 427, "n02802426": 430, "n02808440": 435, "n02814533": 436, "n02814860": 437,
    "n02815834": 438, "n02823428": 440, "n02837789": 445, "n02841315": 447, "n02843684": 448, "n02883205": 457,
    "n02892201": 458, "n02906734": 462, "n02909870": 463, "n02917067": 466, "n02927161": 467, "n02948072": 470,
    "n02950826": 471, "n02963159": 474, "n02977058": 480, "n02988304": 485, "n02999410": 488, "n03014705": 492,
    "n03026506": 496, "n03042490": 500, "n03085013": 508, "n03089624": 509, "n03100240": 511, "n03126707": 517,
    "n03160309": 525, "n03179701": 526, "n03201208": 532, "n03250847": 542, "n03255030": 543, "n03355925": 557,
    "n03388043": 562, "n03393912": 565, "n03400231": 567, "n03404251": 568, "n03424325": 570, "n03444034": 573,
    "n03447447": 576, "n03544143": 604, "n03584254": 605, "n03599486": 612, "n03617480": 614, "n03637318": 619,
    "n03649909": 621, "n03662601": 625, "n03670208": 627, "n03706229": 635, "n03733131": 645, "n03763968": 652,
    "n03770439": 655, "n03796401": 675, "n03804744": 677, "n03814639": 678, "n03837869": 682, "n03838899": 683,
    "n03854065": 687, "n03891332": 704, "n03902125": 707, "n03930313": 716, "n03937543": 720, "n03970156": 731,
    "n03976657": 733, "n03977966": 734, "n03980874": 735, "n03983396": 737, "n03992509": 739, "n04008634": 744,
    "n04023962": 747, "n04067472": 758, "n04070727": 760, "n04074963": 761, "n04099969": 765, "n04118538": 768,
    "n04133789": 774, "n04146614": 779, "n04149813": 781, "n04179913": 786, "n04251144": 801, "n04254777": 806,
    "n04259630": 808, "n04265275": 811, "n04275548": 815, "n04285008": 817, "n04311004": 821, "n04328186": 826,
    "n04356056": 837, "n04366367": 839, "n04371430": 842, "n04376876": 845, "n04398044": 849, "n04399382": 850,
    "n04417672": 853, "n04456115": 862, "n04465501": 866, "n04486054": 873, "n04487081": 874, "n04501370": 877,
    "n04507155": 879, "n04532106": 887, "n04532670": 888, "n04540053": 890, "n04560804": 899, "n04562935": 900,
    "n04596742": 909, "n04597913": 910, "n06596364": 917, "n07579787": 923, "n07583066": 924, "n07614500": 928,
    "n07615774": 929, "n07695742": 932, "n07711569": 935, "n07715103": 938, "n07720875": 945, "n07734744": 947,
    "n07747607": 950, "n07749582": 951, "n07753592": 954, "n07768694": 957, "n07871810": 962, "n07873807": 963,
    "n07875152": 964, "n07920052": 967, "n09193705": 970, "n09246464": 972, "n09256479": 973, "n09332890": 975,
    "n09428293": 978, "n12267677": 988,
}


if __name__ == "__main__":  # python -m cnnviz.imagenet.tiny_classes words.txt wnids.txt
    from torchvision.models import VGG16_Weights

    words_path, wnids_path = sys.argv[1:3]
    with open(wnids_path, encoding="utf-8") as f:
        tiny = [line.strip() for line in f if line.strip()]
    table = derive_indices(read_words(words_path), tiny, VGG16_Weights.IMAGENET1K_V1.meta["categories"])
    for i, (wnid, index) in enumerate(table.items()):
        print(f'    "{wnid}": {index},' if i % 6 == 0 else f' "{wnid}": {index},', end="\n" if i % 6 == 5 else "")
    print()
