export { PaymentPolicy, ReportRefusedError, type PaymentPolicyOptions, type ReportRefusalCode, type VoucherDue } from './payment-policy.js'
