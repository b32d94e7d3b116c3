"""The safety rules in the Django admin, where staff manage them (docs/moderation-safety.md):
the prompt blocklist, protected public figures, and the blocked frame hashes of the output
check. Imported by moderation.admin."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin
from PIL import Image, UnidentifiedImageError

from cameos.models import CameoKind
from rights.detection import alias_problem

from .models import BlockedFrameHash, ProtectedFigure, SafetyRule
from .safety import dhash, hash_hex, hash_to_db

MAX_FIGURE_ALIASES = 20


class SafetyRuleForm(forms.ModelForm):
    class Meta:
        model = SafetyRule
        fields = ("name", "kind", "pattern", "message", "enabled", "teens_only")

    def clean(self):
        data = super().clean()
        if data.get("kind") == SafetyRule.Kind.REGEX and data.get("pattern"):
            try:
                re.compile(data["pattern"])
            except re.error as exc:
                self.add_error("pattern", f"Not a valid regular expression: {exc}")
        return data


@admin.register(SafetyRule)
class SafetyRuleAdmin(admin.ModelAdmin):
    form = SafetyRuleForm
    list_display = ("name", "kind", "pattern", "enabled", "teens_only", "created_at")
    list_filter = ("enabled", "kind", "teens_only")
    list_editable = ("enabled",)
    search_fields = ("name", "pattern")


class ProtectedFigureForm(forms.ModelForm):
    """Aliases one per line; the name and each alias must be matchable without matching half
    the platform's prompts (rights.detection.alias_problem, as for IP aliases)."""

    aliases_text = forms.CharField(
        label="Aliases",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line: other names and spellings (stage names, nicknames). "
        "Obfuscated forms (T4yl0r, spacing, look-alike letters) are matched already.",
    )

    class Meta:
        model = ProtectedFigure
        fields = ("name", "aliases_text", "cameo", "note")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["aliases_text"].initial = "\n".join(self.instance.aliases)

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        problem = alias_problem(name)
        if problem:
            raise forms.ValidationError(problem)
        return name

    def clean_aliases_text(self):
        aliases: list[str] = []
        for line in self.cleaned_data.get("aliases_text", "").splitlines():
            alias = " ".join(line.split())
            if not alias or alias in aliases:
                continue
            problem = alias_problem(alias)
            if problem:
                raise forms.ValidationError(f"{alias}: {problem}")
            aliases.append(alias)
        if len(aliases) > MAX_FIGURE_ALIASES:
            raise forms.ValidationError(f"At most {MAX_FIGURE_ALIASES} aliases.")
        return aliases

    def clean_cameo(self):
        cameo = self.cleaned_data.get("cameo")
        if cameo is not None and cameo.kind != CameoKind.PERSON:
            raise forms.ValidationError("The person's own cameo must be a person cameo.")
        return cameo

    def save(self, commit=True):
        self.instance.aliases = self.cleaned_data.get("aliases_text", [])
        return super().save(commit=commit)


@admin.register(ProtectedFigure)
class ProtectedFigureAdmin(admin.ModelAdmin):
    form = ProtectedFigureForm
    list_display = ("name", "alias_list", "cameo", "created_at")
    search_fields = ("name", "note")
    raw_id_fields = ("cameo",)
    list_select_related = ("cameo",)

    @admin.display(description="aliases")
    def alias_list(self, obj: ProtectedFigure) -> str:
        return ", ".join(obj.aliases)


class BlockedFrameHashForm(forms.ModelForm):
    """A hash from an image of the frame (hashed here, like the check hashes generated frames)
    or typed in as 16 hex digits (a list shared by another platform)."""

    image = forms.ImageField(required=False, help_text="The frame to block; it is not stored.")
    hash_hex = forms.CharField(
        label="Hash", required=False, max_length=16, help_text="Or its dHash as 16 hex digits."
    )

    class Meta:
        model = BlockedFrameHash
        fields = ("label",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["hash_hex"].initial = hash_hex(self.instance.hash)

    def clean(self):
        data = super().clean()
        image, typed = data.get("image"), (data.get("hash_hex") or "").strip().lower()
        if image is not None:
            try:
                image.seek(0)
                with Image.open(image) as picture:
                    data["value"] = dhash(picture)
            except (UnidentifiedImageError, OSError, ValueError):
                self.add_error("image", "Not an image that can be read.")
        elif typed:
            if not re.fullmatch(r"[0-9a-f]{16}", typed):
                self.add_error("hash_hex", "16 hex digits.")
            else:
                data["value"] = int(typed, 16)
        elif self.instance.pk is None:
            raise forms.ValidationError("Give the frame's image or its hash.")
        return data

    def save(self, commit=True):
        if "value" in self.cleaned_data:
            self.instance.hash = hash_to_db(self.cleaned_data["value"])
        return super().save(commit=commit)


@admin.register(BlockedFrameHash)
class BlockedFrameHashAdmin(admin.ModelAdmin):
    form = BlockedFrameHashForm
    list_display = ("hex", "label", "created_at")
    search_fields = ("label",)

    @admin.display(description="hash")
    def hex(self, obj: BlockedFrameHash) -> str:
        return hash_hex(obj.hash)
