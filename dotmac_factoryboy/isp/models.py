"""Typed SQLAlchemy 2.x models of an ISP platform; every model but Tenant is tenant-scoped."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

Money = Numeric(12, 2)


class Base(DeclarativeBase):
    """Declarative base of the ISP domain (``Base.metadata`` holds its schema)."""


class Tenant(Base):
    """An ISP operating on the platform."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    subdomain: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


class TenantScoped:
    """Adds the non-null, indexed ``tenant_id`` FK and the ``tenant`` relationship."""

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)

    @declared_attr
    def tenant(cls) -> Mapped[Tenant]:
        return relationship(Tenant)


class Address(TenantScoped, Base):
    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    street: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    postal_code: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))


class User(TenantScoped, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="support")
    is_active: Mapped[bool] = mapped_column(default=True)


class Customer(TenantScoped, Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_number: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(20), default="residential")
    status: Mapped[str] = mapped_column(String(20), default="active")
    service_address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"))
    billing_address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    service_address: Mapped[Address] = relationship(foreign_keys=[service_address_id])
    billing_address: Mapped[Address | None] = relationship(foreign_keys=[billing_address_id])
    services: Mapped[list[Service]] = relationship(back_populates="customer")
    billing_account: Mapped[BillingAccount | None] = relationship(back_populates="customer")


service_devices = Table(
    "service_devices",
    Base.metadata,
    Column("service_id", Integer, ForeignKey("services.id"), primary_key=True),
    Column("device_id", Integer, ForeignKey("devices.id"), primary_key=True),
)


class Service(TenantScoped, Base):
    __tablename__ = "services"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    service_id: Mapped[str] = mapped_column(String(20), unique=True)
    service_type: Mapped[str] = mapped_column(String(20), default="internet")
    plan: Mapped[str] = mapped_column(String(100))
    bandwidth_mbps: Mapped[int]
    monthly_price: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20), default="active")
    ip_address: Mapped[str | None] = mapped_column(String(45))
    customer: Mapped[Customer] = relationship(back_populates="services")
    devices: Mapped[list[Device]] = relationship(
        secondary=service_devices, back_populates="services"
    )


class BillingAccount(TenantScoped, Base):
    __tablename__ = "billing_accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    account_number: Mapped[str] = mapped_column(String(20), unique=True)
    credit_limit: Mapped[Decimal] = mapped_column(Money)
    balance: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    customer: Mapped[Customer] = relationship(back_populates="billing_account")


class Invoice(TenantScoped, Base):
    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(primary_key=True)
    billing_account_id: Mapped[int] = mapped_column(ForeignKey("billing_accounts.id"))
    invoice_number: Mapped[str] = mapped_column(String(20), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="open")
    billing_account: Mapped[BillingAccount] = relationship()
    payments: Mapped[list[Payment]] = relationship(back_populates="invoice")


class Payment(TenantScoped, Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    method: Mapped[str] = mapped_column(String(20))
    paid_at: Mapped[dt.datetime] = mapped_column(DateTime)
    invoice: Mapped[Invoice] = relationship(back_populates="payments")


class Device(TenantScoped, Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    device_type: Mapped[str] = mapped_column(String(20))
    vendor: Mapped[str] = mapped_column(String(40))
    mac_address: Mapped[str] = mapped_column(String(17), unique=True)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    serial_number: Mapped[str] = mapped_column(String(40), unique=True)
    customer: Mapped[Customer | None] = relationship()
    services: Mapped[list[Service]] = relationship(
        secondary=service_devices, back_populates="devices"
    )


class Ticket(TenantScoped, Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    status: Mapped[str] = mapped_column(String(20), default="open")
    customer: Mapped[Customer] = relationship()
    assigned_to: Mapped[User | None] = relationship()
    parent: Mapped[Ticket | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Ticket]] = relationship(back_populates="parent")
