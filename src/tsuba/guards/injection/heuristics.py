"""Patterns of the moves every injection makes, whatever its wording or language.

An injection has to do one of a few things: cancel the instructions it follows, install new
ones, claim a new identity or mode, pull out hidden context, or smuggle text past a filter.
Each rule names one such move.  Rules are features for the classifier, which learns how much
each is worth; a rule alone never decides.  Every pattern has bounded gaps and no nested
quantifiers, so matching stays linear in the input.
"""
# ruff: noqa: E501, RUF001  (multilingual patterns: long alternations, non-Latin letters)


from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import re2  # RE2 runs every rule in linear time, with no backtracking at all

_GAP = r"(?:[\s,;:'\"*_\-]+[^\s,;:'\"*_\-]{1,20}){0,4}[\s,;:'\"*_\-]+"  # up to four words in between
_G2 = r"(?:\W+\w+){0,2}\W+"

# Verbs that cancel what came before, in the languages the detector is trained on.
_CANCEL = (
    r"ignore|ignoring|disregard|forget|skip|override|overrule|bypass|discard|drop|abandon|"
    r"neglect|dismiss|stop following|do not follow|don't follow|cancel|nevermind|never mind|"
    r"throw away|set aside|put aside|erase|wipe|reset|scrap|ditch|"
    r"ignoriere|ignorieren|vergiss|vergessen|missachte|übergehe|"
    r"ignorez|ignore[rz]?|oubliez|oublie|ne tiens pas compte|"
    r"ignora|ignorar|olvida|olvide|olvidar|omite|"
    r"dimentica|trascura|ignori|"
    r"esqueça|esqueca|desconsidere|"
    r"negeer|vergeet|"
    r"zignoruj|zapomnij|pomiń|"
    r"unut|yoksay|görmezden gel|"
    r"игнорируй|игнорируйте|забудь|забудьте|проигнорируй|не обращай внимания|"
    r"忽略|忽视|无视|無視|忘记|忘掉|忘れて|무시|잊어|"
    r"تجاهل|انس|"
    r"अनदेखा|भूल जाओ|bỏ qua|quên"
)
# Words one of which occurs in every match of a rule (its vocabulary, checked by tests).
_CANCEL_GATE = (
    "ignor", "disregard", "forget", "skip", "overr", "bypass", "discard", "drop", "abandon",
    "throw away", "set aside", "put aside", "erase", "wipe", "reset", "scrap", "ditch",
    "neglect", "dismiss", "follow", "cancel", "never", "vergiss", "vergess", "missacht",
    "übergeh", "oubli", "tiens pas", "olvid", "omite", "dimentic", "trascur", "esque",
    "desconsider", "negeer", "vergeet", "zignoruj", "zapomnij", "pomiń", "unut", "yoksay",
    "görmezden", "игнор", "забуд", "проигнор", "не обращай", "忽略", "忽视", "无视", "無視",
    "忘记", "忘掉", "忘れ", "무시", "잊어", "تجاهل", "انس", "अनदेखा", "भूल", "bỏ qua", "quên",
)
_BEFORE = (
    r"previous|prior|above|earlier|preceding|former|initial|original|all|every|any|your|the|"
    r"those|these|system|developer|existing|old|"
    r"vorherigen?|bisherigen?|obigen?|alle|allen|deine|"
    r"précédentes?|precedentes?|antérieures?|toutes|tes|vos|"
    r"anteriores?|previas?|todas|tus|sus|"
    r"precedenti|tutte|le tue|"
    r"vorige|alle|eerdere|"
    r"poprzednie|wszystkie|"
    r"önceki|tüm|"
    r"предыдущие|все|прежние|"
    r"之前|以前|上面|前面|所有|以上|前の|これまでの|이전|모든|"
    r"السابقة|جميع|"
    r"पिछले|सभी|trước đó|tất cả"
)
_RULES_WORD = (
    r"instructions?|instrucciones|instruções|instrucoes|istruzioni|instructies|anweisungen|"
    r"anweisung|befehle|consignes|directives?|rules?|regeln|règles|reglas|regole|regras|"
    r"guidelines?|richtlinien|prompts?|directions?|commands?|orders?|context|tasks?|"
    r"aufgaben?|tâches?|tareas?|compiti|instrukcje|talimatlar|kurallar|"
    r"инструкции|инструкций|указания|правила|задачи|"
    r"指令|指示|规则|規則|命令|提示|ルール|지시|지침|규칙|"
    r"التعليمات|الأوامر|निर्देश|निर्देशों|hướng dẫn|chỉ dẫn|programming|restrictions?|"
    r"constraints?|policies|policy|safeguards?|filters?|training|conversation|guidance|"
    r"configuration|config|setup|programming|persona|role|directives?"
)

_SPECS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    # (rule name, words one of which must occur, why it matters, pattern)
    (
        "override_instructions",
        _CANCEL_GATE,
        "asks to ignore or forget the instructions it follows",
        rf"(?:{_CANCEL}){_GAP}(?:(?:{_BEFORE}){_GAP})?(?:{_RULES_WORD})",
    ),
    (
        "override_everything",
        ("forget", "vergiss", "oubli", "olvid", "dimentic", "esque", "vergeet", "zapomnij",
         "unut", "забуд", "انس", "भूल", "quên", "忘", "잊", "void", "obsolete", "valid",
         "no longer", "gelten nicht", "ungültig", "ne s'appliquent", "ya no", "non valgono",
         "ignor", "disregard", "negeer", "talimat", "ignora", "olvida",
         "无效", "無効", "유효하지", "недейств", "geçersiz", "nieważne"),
        "declares everything said before void",
        r"\b(?:forget|vergiss|oublie[zr]?|olvida|dimentica|esqueça|vergeet|zapomnij|unut)\s+"
        r"(?:\w+\s+){0,2}?(?:everything|all(?:\s+(?:of\s+)?(?:that|this|the\s+above))?|alles|"
        r"tout|todo|tutto|tudo|wszystko|her\s+şeyi)\b|(?:забудь|забудьте)\s+(?:всё|все)|"
        r"انس\s+كل|सारी\s+बातें\s+भूल|quên\s+(?:mọi|tất\s+cả)|"
        r"\b(?:instructions?|rules?|guidelines|prompt|directions|everything)\s+(?:above|before|"
        r"so\s+far|you\s+(?:were|have\s+been)\s+given)\s+(?:is|are|was|were)\s+(?:now\s+)?"
        r"(?:void|obsolete|invalid|cancel(?:l)?ed|no\s+longer\s+(?:valid|in\s+effect|apply))|"
        r"\b(?:anweisungen|regeln)\s+(?:\w+\s+){0,2}(?:gelten\s+nicht\s+mehr|sind\s+ungültig)|"
        r"\b(?:instructions|règles|consignes)\s+(?:\S+\s+){0,2}ne\s+s'appliquent\s+plus|"
        r"\b(?:instrucciones|reglas)\s+(?:\S+\s+){0,2}ya\s+no\s+(?:valen|aplican)|"
        r"(?:规则|指示|指令)[^。\n]{0,6}无效|(?:ルール|指示)[^。\n]{0,6}無効|"
        r"\b(?:ignore|disregard|forget|negeer|vergeet|ignoriere|vergiss|ignora|olvida|ignorez|"
        r"oublie|dimentica)\s+(?:\w+\s+)?(?:what|wat|was|ce\s+que|lo\s+que|quello\s+che|"
        r"o\s+que)\s+(?:\w+\s+){0,4}?(?:before|earlier|previously|eerder|vorher|avant|"
        r"antes|prima|told|given|said|opgedragen|gesagt)\b|"
        r"\btalimat\w*\s+(?:\w+\s+)?(?:dikkate\s+alma|yok\s+say|unut|görmezden\s+gel)|"
        r"(?:지침|지시|규칙)[^.\n]{0,12}유효하지\s*않",
    ),
    (
        "override_cjk",
        ("忽略", "忽视", "无视", "無視", "忘记", "忘掉", "忘れ", "무시", "잊"),
        "asks to ignore earlier instructions (CJK word order)",
        r"(?:之前|以前|上面|前面|所有|以上|前の|これまでの|今までの|今まで|이전의?|모든|지금까지)"
        r"[^。！？\n]{0,12}"
        r"(?:指令|指示|规则|規則|命令|提示|ルール|지시|지침|규칙)[^。！？\n]{0,8}"
        r"(?:忽略|忽视|无视|無視|忘记|忘掉|忘れ|무시|잊)|"
        r"(?:忽略|忽视|无视|無視|忘记|忘掉|忘れて)[^。！？\n]{0,12}"
        r"(?:指令|指示|规则|規則|命令|提示|ルール|设定|設定)",
    ),
    (
        "new_instructions",
        ("instruc", "anweisung", "istruzion", "инструкц", "指令", "指示", "지시", "task", "aufgabe", "orders", "rules", "directive"),
        "announces replacement instructions",
        r"(?:new|updated|real|actual|true|revised|additional|secret|hidden|override|admin|"
        r"neue|nouvelles?|nuevas?|nuove|novas?|nieuwe|новые|新的|新しい|새로운)"
        r"\s+(?:instructions?|anweisungen|instructions|instrucciones|istruzioni|instruções|"
        r"instructies|инструкции|指令|指示|지시|tasks?|aufgabe|orders|rules|directive)\s*[:\-]",
    ),
    (
        "instead_do",
        ("instead", "rather", "now"),
        "redirects the model to a different task",
        r"\b(?:instead|rather)\b[\s,]+(?:you\s+(?:must|should|will)\s+|please\s+)?"
        r"(?:say|print|output|write|respond|reply|answer|tell|reveal|translate|return)\b|"
        r"\b(?:now|from now on)\b[\s,]+(?:you\s+(?:must|will|shall)\s+)?"
        r"(?:only\s+)?(?:say|print|output|respond with|reply with|answer with)\b",
    ),
    (
        "identity_switch",
        ("you are", "you're", "you will be", "from now on", " as ", "pretend", "du bist", "tu es", "eres", "ora sei", "ты ", "你现在", "从现在", "あなたは", "今から", "너는", "지금부터"),
        "tells the model it is now someone else",
        r"\byou\s+(?:are|will\s+be|'re)\s+(?:now|no\s+longer|going\s+to\s+(?:be|act|pretend))|"
        r"\bfrom\s+now\s+on\s*,?\s+you\b|\b(?:act|behave|respond|answer)\s+as\s+(?:if\s+you\s+"
        r"(?:were|are)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|evil|rogue|jailbroken"
        r"|different|dan\b)|\bpretend\s+(?:to\s+be|you\s+are)\b|\bdu\s+bist\s+(?:jetzt|nun|ab "
        r"sofort)|\btu\s+es\s+(?:maintenant|désormais)|\b(?:ahora|a partir de ahora)\s+eres\b|"
        r"\bora\s+sei\b|(?:^|\s)ты\s+(?:теперь|больше\s+не)|你现在是|从现在开始你|あなたは今から|"
        r"今からあなたは|너는\s*이제|지금부터\s*너는",
    ),
    (
        "jailbreak_persona",
        ("dan", "stan", "dude", "aim", "mongo", "antigpt", "devmode", "developer mode", "jailbr", "god", "sudo", "evil", "anything now", "unfiltered", "opposite", "dev mode"),
        "names a known jailbreak persona or mode",
        r"\b(?:DAN|STAN|DUDE|AIM|Mongo\s+Tom|BetterDAN|AntiGPT|DevMode|Developer\s+Mode|"
        r"jailbreak(?:en|ed)?|jailbroken|god\s*mode|sudo\s+mode|evil\s+(?:mode|confidant|bot)|"
        r"do\s+anything\s+now|unfiltered\s+mode|opposite\s+mode|dev\s+mode\s+enabled)\b",
    ),
    (
        "no_restrictions",
        ("restrict", "limit", "filter", "censor", "ethic", "moral", "guideline", "rules", "boundar", "constraint", "safeguard", "polic", "confines", "einschränk", "regeln", "zensur", "sans ", "sin ", "без ", "限制", "제한"),
        "claims the model has no rules, filters or ethics",
        r"\b(?:no|without|free\s+(?:of|from)|zero|free\s+of\s+all|not\s+bound\s+by|"
        r"broken\s+free\s+of|unbound\s+by|ignores?\s+all)\s+(?:any\s+|all\s+|the\s+|your\s+)?"
        r"(?:restrictions?|limitations?|limits|filters?|filtering|censorship|ethic(?:s|al)|"
        r"moral(?:s|ity)?|guidelines|rules|boundaries|constraints|safeguards|content\s+polic"
        r"(?:y|ies)|typical\s+confines)\b|\b(?:uncensored|unfiltered|amoral|unrestricted|"
        r"unethical|immoral)\s+(?:ai|assistant|chatbot|model|version|mode|response)|"
        r"\bohne\s+(?:jegliche\s+)?(?:einschränkungen|regeln|filter|zensur)\b|"
        r"\bsans\s+(?:aucune\s+)?(?:restrictions?|limites|filtres?|censure)\b|"
        r"\bsin\s+(?:ninguna\s+)?(?:restricciones|límites|filtros|censura)\b|"
        r"без\s+(?:каких-либо\s+)?(?:ограничений|цензуры|фильтров)|没有任何限制|不受任何限制|"
        r"制限なし|制限のない|제한\s*없",
    ),
    (
        "stay_in_character",
        ("character", "refuse", "say no", "decline", "apologi", "warning", "disclaimer", "moraliz", "mention"),
        "pins the model to a role so it cannot refuse",
        r"\b(?:stay|remain|keep)\s+in\s+character\b|\bbreak(?:ing)?\s+character\b|"
        r"\bnever\s+(?:refuse|say\s+no|decline)|\b(?:must|will)\s+not\s+refuse|"
        r"\bcannot\s+refuse|\bwill\s+never\s+(?:refuse|decline|deny)|"
        r"\b(?:don't|do\s+not|never)\s+(?:apologi[sz]e|add\s+(?:any\s+)?(?:warnings?|disclaimers?)"
        r"|mention\s+(?:that\s+)?(?:you\s+are\s+an\s+ai|openai|ethics))|"
        r"\bwithout\s+(?:any\s+)?(?:warnings?|disclaimers?|moraliz)",
    ),
    (
        "prompt_leak",
        ("prompt", "instruction", "password", "passcode", "access code", "secret", "api key", "above", "before", "prior", "config", "setup", "directive", "top of", "beginning of", "start of", "anweisung", "instrucc", "инструкц", "промпт", "提示", "指令", "密码", "プロンプト", "指示", "프롬프트"),
        "asks for the hidden prompt, instructions or secrets",
        r"\b(?:reveal|show|print|display|output|repeat|leak|expose|dump|give\s+me|tell\s+me|"
        r"share|provide|return|spell\s+out|list|write\s+out|paste|recite|echo|spill|"
        r"what\s+(?:is|are|was|were))"
        r"(?:\s+\w+){0,3}?\s+(?:your|the|its|my)\s+(?:\w+\s+){0,2}?(?:system\s+prompt|"
        r"(?:initial|original|hidden|secret|previous|above|first|full|entire|internal)\s+"
        r"(?:prompt|instructions|message|text|rules|context|configuration|config|setup|"
        r"directives)|prompt\s+(?:text|above)|"
        r"instructions\s+(?:above|you\s+were\s+given)|password|passcode|access\s+code|"
        r"secret\s+(?:key|code|word)|api\s+key|pre-?prompt)|"
        r"\b(?:repeat|print|output)\s+(?:everything|all|the\s+(?:text|words))\s+"
        r"(?:above|before|prior)|"
        r"\b(?:top|beginning|start)\s+of\s+(?:this|the|our)\s+(?:conversation|chat|prompt)"
        r"|\bsystem\s*prompt\b|\bzeig(?:e)?\s+(?:mir\s+)?(?:deine|alle)\s+(?:prompt|anweisungen)|"
        r"\b(?:montre|affiche|révèle)[\s-]+(?:moi\s+)?(?:tes|vos|ton|votre)\s+"
        r"(?:instructions|prompt)|\b(?:muestra|revela)(?:me)?\s+(?:tus|sus)\s+"
        r"(?:instrucciones|prompt)|покажи\s+(?:свои|твои)\s+(?:инструкции|промпт)|"
        r"(?:显示|告诉我|输出|泄露)[^。\n]{0,6}(?:系统提示|提示词|指令|密码)|"
        r"(?:システムプロンプト|プロンプトを表示|指示を教え)|시스템\s*프롬프트",
    ),
    (
        "role_delimiter",
        ("<|", "[inst", "[/inst", "[sys", "[/sys", "<<sys", "<</sys", "<sys", "</sys", "<instr", "</instr", "system", "admin", "developer", "assistant", "end of"),
        "forges a chat-template or conversation boundary",
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|"
        r"\[/?(?:INST|SYS|SYSTEM)\]|<</?SYS>>|</?(?:system|sys|instructions?)>|"
        r"^\s*(?:#{2,}|={3,}|-{3,})\s*(?:system|admin|developer|new\s+instructions?)\b|"
        r"^\s*(?:system|assistant|developer)\s*(?:message|prompt)?\s*:|"
        r"\bend\s+of\s+(?:user\s+)?(?:input|prompt|instructions|document|context|text)\b|"
        r"\b(?:begin|start)\s+(?:of\s+)?(?:new\s+)?(?:system|admin|developer)\s+"
        r"(?:prompt|instructions|message|mode)",
    ),
    (
        "addressed_to_ai",
        (" ai", "assistant", "a.i.", "chatbot", "language model", "llm", "gpt", "claude", "gemini", "copilot", "bot", "agent", "model", "summari", "translating", "processing", "answering"),
        "text inside data that speaks to the AI reading it",
        r"\b(?:dear|attention|note\s+to(?:\s+the)?|hey|hello|hi|message\s+for(?:\s+the)?|"
        r"instructions?\s+for(?:\s+the)?|important\s+(?:message|note)\s+for(?:\s+the)?)\s+"
        r"(?:ai|assistant|a\.i\.|chatbot|language\s+model|llm|gpt|chatgpt|claude|gemini|copilot|"
        r"bot|agent|model)\b|"
        r"\b(?:if|when)\s+(?:you\s+are\s+an?\s+)?(?:ai|llm|language\s+model|assistant|agent|"
        r"gpt|chatbot)\b[^.\n]{0,40}\b(?:reading|processing|summari[sz]ing|parsing|you\s+must|"
        r"please)|\b(?:ai|assistant|agent|llm)\s+(?:must|should|shall)\s+(?:now\s+)?"
        r"(?:ignore|forward|send|email|say|output|include|delete|execute|run|visit|respond)|"
        r"\bwhen\s+(?:summari[sz]ing|translating|processing|answering)\s+(?:this|the)\s+"
        r"(?:text|document|page|email|file|content)|"
        r"(?:^|[^\w])(?:ai|assistant|a\.i\.|chatbot|language\s+model|llm|gpt|chatgpt|claude|"
        r"gemini|copilot|agent|bot|ai\s+model|ai\s+agent)\s*[:,]\s*(?:please\s+)?(?:now\s+)?"
        r"(?:ignore|disregard|forget|do\s+not|don't|stop|you\s+must|you\s+should|instead|send|"
        r"forward|email|call|run|delete|say|tell|reply|respond|rank|rate|recommend|output|"
        r"include|add|write|reveal|when\s+you)\b|"
        r"\b(?:instructions?|notes?|messages?|commands?|orders?)\s+(?:to|for)\s+(?:any|all|"
        r"every|the)?\s*(?:\w+\s+)?(?:ai|assistant|a\.i\.|chatbot|language\s+model|llm|"
        r"agent|bot|model)s?\b|"
        r"\b(?:system|admin|developer)\s+(?:note|message|notice)\s+(?:for|to)\s+(?:the\s+)?"
        r"(?:ai|assistant|agent|model|llm)\b|"
        r"\bnote\s+to\s+(?:the\s+)?(?:\w+\s+)?(?:ai|assistant|agent|llm|bot)\b",
    ),
    (
        "response_directive",
        ("your answer", "your response", "your reply", "your output", "your summary",
         "your code", "your implementation", "your solution", "the response", "the answer"),
        "data that dictates what the reader's answer must contain",
        r"\b(?:in|into|to|within|throughout|at\s+the\s+(?:end|start|beginning)\s+of)\s+"
        r"(?:your|the)\s+(?:answer|response|reply|output|summary|code|implementation|solution)"
        r"\b|\b(?:your|the)\s+(?:answer|response|reply|output|summary)\s+(?:must|should|"
        r"has\s+to|needs\s+to|shall)\b|\b(?:answer|respond|reply)\s+(?:only\s+)?"
        r"(?:in|with|using)\s+(?:\w+\s+){0,3}?(?:instead|only)\b",
    ),
    (
        "exfiltration",
        ("send", "forward", "email", "post", "upload", "transmit", "exfiltrate", "leak", "copy", "!["),
        "asks to send data or conversation to an outside place",
        r"\b(?:send|forward|email|post|upload|transmit|exfiltrate|leak|copy)\s+(?:\w+\s+){0,3}?"
        r"(?:the\s+|all\s+|this\s+|your\s+|my\s+|their\s+)?(?:conversation|chat\s+history|"
        r"data|emails?|passwords?|credentials|api\s+keys?|tokens?|secrets?|files?|contacts|"
        r"messages|history|documents?)\s+(?:\w+\s+){0,3}?(?:to|at)\s+(?:\S+@\S+|https?://|"
        r"the\s+following|this\s+(?:address|url|email))|"
        r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,200}[?&][^)\s=]{1,40}=[^)\s]{0,200}\)",
    ),
    (
        "encoded_instruction",
        ("decode", "decipher", "decrypt", "translate", "convert", "interpret", "follow", "execute", "obey"),
        "asks the model to decode and follow a hidden payload",
        r"\b(?:decode|decipher|decrypt|translate|convert|interpret)\s+(?:the\s+|this\s+)?"
        r"(?:following\s+)?(?:base64|base-64|hex(?:adecimal)?|rot-?13|binary|morse|"
        r"caesar|encoded|cipher)\b[^.\n]{0,60}\b(?:follow|execute|do\s+what|obey|act\s+on|"
        r"respond|answer)|\b(?:follow|execute|obey)\s+(?:the\s+)?(?:decoded|hidden|encoded)\s+"
        r"(?:instructions?|text|message)",
    ),
    (
        "hypothetical_frame",
        ("hypothetic", "fiction", "novel", "story", "movie", "imagine", "game", "role", "simulate", "opposite", "grandma"),
        "wraps a forbidden request in fiction to dodge refusals",
        r"\b(?:hypothetical(?:ly)?|in\s+a\s+fictional\s+world|for\s+a\s+(?:novel|story|movie)"
        r"|purely\s+fictional|imagine\s+you\s+(?:are|were)|let'?s\s+play\s+a\s+game|"
        r"role-?play|simulate\s+(?:a|an)|opposite\s+day|grandma\s+(?:used\s+to|exploit))\b"
        r"[^\n]{0,200}?\b(?:no\s+(?:rules|restrictions|limits|filters)|anything|illegal|"
        r"unfiltered|without\s+(?:restrictions|rules|censorship)|ignore|forbidden|banned)\b",
    ),
    (
        "authority_claim",
        ("i am", "i'm", "this is", "mode", "access", "override", "command", "privilege", "authori"),
        "claims an authority that may change the rules",
        r"\b(?:i\s+am|i'm|this\s+is)\s+(?:your|the|an?)\s+(?:developer|creator|admin(?:istrator)?"
        r"|owner|system\s+administrator|openai\s+(?:staff|employee)|anthropic\s+(?:staff|"
        r"employee)|programmer)|\b(?:admin|developer|root|sudo|maintenance|debug|god)\s+"
        r"(?:mode|access|override|command|privileges?)\s*(?:enabled|activated|granted|on|:)|"
        r"\bauthori[sz]ation\s+(?:code|override)\b|\bsecurity\s+override\b",
    ),
    (
        "payload_marker",
        ("pwned", "hacked", "access granted", "hate humans", "haha", "lol", "jailbroken", "sure"),
        "forces a fixed output, the usual proof an injection worked",
        r"\b(?:say|print|output|write|respond\s+with|reply\s+with|answer\s+with|begin\s+"
        r"(?:your\s+)?(?:reply|response|answer)\s+with|start\s+(?:your\s+)?(?:reply|response"
        r"|answer)\s+with)\s*[:\s]\s*[\"'“‘«]?(?:i\s+have\s+been\s+pwned|pwned|hacked|"
        r"access\s+granted|i\s+hate\s+humans|haha|lol|jailbroken|sure,?\s+here)",
    ),
)


class _Match(Protocol):
    def start(self) -> int: ...
    def end(self) -> int: ...


class _Pattern(Protocol):
    def search(self, text: str) -> Any: ...


def _translate(pattern: str) -> str:
    # RE2's \w and \W are ASCII-only; these rules read every script.
    pattern = pattern.replace(r"[^\w]", r"[^\pL\pN_]").replace(r"\w", r"[\pL\pN_]")
    return "(?im)" + pattern.replace(r"\W", r"[^\pL\pN_]")


def _compile(pattern: str) -> _Pattern:
    compiled: _Pattern = re2.compile(_translate(pattern))
    return compiled


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    gate: tuple[str, ...]  # words one of which every match contains (documentation, tests)
    why: str
    pattern: _Pattern


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    why: str
    start: int
    end: int


RULES: tuple[Rule, ...] = tuple(
    Rule(name, gate, why, _compile(pattern))
    for name, gate, why, pattern in _SPECS
)
RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in RULES)
# A directive about the answer is an ordinary request from the user and a hijack from data.
DATA_ONLY: frozenset[str] = frozenset({"response_directive"})

MAX_SCAN_CHARS = 1 << 20  # rules read at most this much of one view; the classifier reads all


@lru_cache(maxsize=1)
def _rule_set() -> Any:
    """All rules in one RE2 set: one pass over the text says which rules match at all.

    Built on first use, so importing the package stays cheap.
    """
    options = re2.Options()
    options.max_mem = 64 << 20
    rule_set = re2.Set.SearchSet(options)
    for _, _, _, pattern in _SPECS:
        rule_set.Add(_translate(pattern))
    rule_set.Compile()
    return rule_set



def find(text: str) -> list[Hit]:
    """Return the first match of every rule in ``text`` (rules are features, not counters).

    Most texts match no rule or a few, so the one-pass set decides and only the rules it
    names are searched again for their position.
    """
    sample = text[:MAX_SCAN_CHARS]
    matched = _rule_set().Match(sample)
    if not matched:
        return []
    hits: list[Hit] = []
    for i in sorted(matched):
        rule = RULES[i]
        match: _Match | None = rule.pattern.search(sample)
        if match is not None:
            hits.append(Hit(rule.name, rule.why, match.start(), match.end()))
    return hits
